-- profile_classes: public classes that sites' roles and profiles include.
-- A site counts for at most :rows_per_site of them (the first by name).
-- keys: name
-- rows per site: 20
WITH bounded AS (
    SELECT name, ROW_NUMBER() OVER (PARTITION BY site_week ORDER BY name) AS n
    FROM site_week_profile_classes
    WHERE week = :week
)
SELECT name, COUNT(*) AS sites
FROM bounded
WHERE n <= :rows_per_site
GROUP BY name
ORDER BY name
