-- modules: how many sites have each public module installed (any version, any environment).
-- A site counts for at most :rows_per_site modules: the first in the last
-- published week's ranking (public numbers), then by slug.
-- keys: slug
-- rows per site: 40
WITH ranking (slug, position) AS (:module_ranking),
installed AS (
    SELECT DISTINCT site_week, slug FROM site_week_modules WHERE week = :week
),
bounded AS (
    SELECT i.slug, ROW_NUMBER() OVER (PARTITION BY i.site_week ORDER BY COALESCE(r.position, :unranked), i.slug) AS n
    FROM installed AS i LEFT JOIN ranking AS r ON r.slug = i.slug
)
SELECT slug, COUNT(*) AS sites
FROM bounded
WHERE n <= :rows_per_site
GROUP BY slug
ORDER BY slug
