-- profile_classes: public classes that sites' roles and profiles include.
-- keys: name
-- noise: sites=1
SELECT name, COUNT(*) AS sites
FROM site_week_profile_classes
WHERE week = :week
GROUP BY name
HAVING COUNT(*) >= :k
ORDER BY name
