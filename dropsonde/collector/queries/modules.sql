-- modules: how many sites have each public module installed (any version, any environment).
-- keys: slug
-- noise: sites=1
SELECT slug, COUNT(DISTINCT site_week) AS sites
FROM site_week_modules
WHERE week = :week
GROUP BY slug
HAVING COUNT(DISTINCT site_week) >= :k
ORDER BY slug
