-- module_triples: how many sites use each three of the :triple_modules most
-- used public modules together (slug_a < slug_b < slug_c in byte order),
-- chosen by their published (noisy) site counts, never the true ones.
-- keys: slug_a, slug_b, slug_c
-- noise: sites=1
WITH kept AS (
    SELECT DISTINCT site_week, slug FROM site_week_modules WHERE week = :week AND slug IN (:triple_modules)
)
SELECT a.slug AS slug_a, b.slug AS slug_b, c.slug AS slug_c, COUNT(*) AS sites
FROM kept AS a
JOIN kept AS b ON b.site_week = a.site_week AND a.slug < b.slug
JOIN kept AS c ON c.site_week = a.site_week AND b.slug < c.slug
GROUP BY a.slug, b.slug, c.slug
HAVING COUNT(*) >= :k
ORDER BY a.slug, b.slug, c.slug
