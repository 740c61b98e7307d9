-- module_pairs: how many sites use each two of the :pair_modules most used
-- public modules together (slug_a < slug_b in byte order). Only those
-- modules, chosen by their published (noisy) site counts: however many
-- modules crafted reports name, a week has at most C(M, 2) pairs.
-- keys: slug_a, slug_b
-- noise: sites=1
WITH kept AS (
    SELECT DISTINCT site_week, slug FROM site_week_modules WHERE week = :week AND slug IN (:pair_modules)
)
SELECT a.slug AS slug_a, b.slug AS slug_b, COUNT(*) AS sites
FROM kept AS a
JOIN kept AS b ON b.site_week = a.site_week AND a.slug < b.slug
GROUP BY a.slug, b.slug
HAVING COUNT(*) >= :k
ORDER BY a.slug, b.slug
