-- module_pairs: how many sites use each two of the most used public modules
-- together (slug_a < slug_b in byte order). The modules are this week's
-- published ranking (:pair_ranking, noisy counts, never the true ones); each
-- site counts with its first :modules_per_site of them in that ranking, so it
-- adds to at most C(modules per site, 2) pairs and the join is linear in sites.
-- keys: slug_a, slug_b
-- modules per site: 12
WITH ranking (slug, position) AS (:pair_ranking),
installed AS (
    SELECT DISTINCT site_week, slug FROM site_week_modules WHERE week = :week
),
ranked AS (
    SELECT i.site_week, i.slug, ROW_NUMBER() OVER (PARTITION BY i.site_week ORDER BY r.position) AS n
    FROM installed AS i JOIN ranking AS r ON r.slug = i.slug
),
kept AS (
    SELECT site_week, slug FROM ranked WHERE n <= :modules_per_site
)
SELECT a.slug AS slug_a, b.slug AS slug_b, COUNT(*) AS sites
FROM kept AS a
JOIN kept AS b ON b.site_week = a.site_week AND a.slug < b.slug
GROUP BY a.slug, b.slug
ORDER BY a.slug, b.slug
