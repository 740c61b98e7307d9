-- module_versions: how many sites have each version of each public module.
-- A site counts for at most :rows_per_site (module, version) rows, its modules
-- taken in the last published week's ranking (public numbers), then by slug.
-- keys: slug, version
-- rows per site: 40
WITH ranking (slug, position) AS (:module_ranking),
bounded AS (
    SELECT m.slug, m.version,
           ROW_NUMBER() OVER (PARTITION BY m.site_week ORDER BY COALESCE(r.position, :unranked), m.slug, m.version) AS n
    FROM site_week_modules AS m LEFT JOIN ranking AS r ON r.slug = m.slug
    WHERE m.week = :week
)
SELECT slug, version, COUNT(*) AS sites
FROM bounded
WHERE n <= :rows_per_site
GROUP BY slug, version
ORDER BY slug, version
