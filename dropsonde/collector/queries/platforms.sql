-- platforms: how many sites have nodes of each OS family.
-- A site counts for at most :rows_per_site of them (the first by platform).
-- keys: platform
-- rows per site: 4
WITH bounded AS (
    SELECT platform, ROW_NUMBER() OVER (PARTITION BY site_week ORDER BY platform) AS n
    FROM site_week_platforms
    WHERE week = :week
)
SELECT platform, COUNT(*) AS sites
FROM bounded
WHERE n <= :rows_per_site
GROUP BY platform
ORDER BY platform
