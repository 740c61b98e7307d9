-- module_versions: how many sites have each version of each public module.
-- keys: slug, version
-- noise: sites=1
SELECT slug, version, COUNT(*) AS sites
FROM site_week_modules
WHERE week = :week
GROUP BY slug, version
HAVING COUNT(*) >= :k
ORDER BY slug, version
