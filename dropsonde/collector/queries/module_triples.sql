-- module_triples: how many sites use each three of the most used public
-- modules together (slug_a < slug_b < slug_c in byte order), among this
-- week's published ranking (:triple_ranking); each site counts with its first
-- :modules_per_site of them, so it adds to at most C(modules per site, 3) triples.
-- keys: slug_a, slug_b, slug_c
-- modules per site: 6
WITH ranking (slug, position) AS (:triple_ranking),
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
SELECT a.slug AS slug_a, b.slug AS slug_b, c.slug AS slug_c, COUNT(*) AS sites
FROM kept AS a
JOIN kept AS b ON b.site_week = a.site_week AND a.slug < b.slug
JOIN kept AS c ON c.site_week = a.site_week AND b.slug < c.slug
GROUP BY a.slug, b.slug, c.slug
ORDER BY a.slug, b.slug, c.slug
