-- dependencies: public modules that sites' private modules depend on.
-- keys: name
-- noise: sites=1
SELECT name, COUNT(*) AS sites
FROM site_week_dependencies
WHERE week = :week
GROUP BY name
HAVING COUNT(*) >= :k
ORDER BY name
