-- module_pairs: how many sites use each two public modules together
-- (slug_a < slug_b in byte order). Only modules that are themselves on at
-- least k sites can be in a pair that is, so the others are left out first.
-- keys: slug_a, slug_b
-- noise: sites=1
WITH installed AS (
    SELECT DISTINCT site_week, slug FROM site_week_modules WHERE week = :week
), common AS (
    SELECT slug FROM installed GROUP BY slug HAVING COUNT(*) >= :k
), kept AS (
    SELECT installed.site_week, installed.slug FROM installed JOIN common ON common.slug = installed.slug
)
SELECT a.slug AS slug_a, b.slug AS slug_b, COUNT(*) AS sites
FROM kept AS a
JOIN kept AS b ON b.site_week = a.site_week AND a.slug < b.slug
GROUP BY a.slug, b.slug
HAVING COUNT(*) >= :k
ORDER BY a.slug, b.slug
