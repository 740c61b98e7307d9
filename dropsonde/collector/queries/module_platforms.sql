-- module_platforms: how many sites run each public module on nodes of each OS
-- family (a module runs on a family at a site when one of its classes is
-- declared on nodes of that family, from PuppetDB: the class_platforms column).
-- A site counts for at most :rows_per_site (module, family) rows: its modules
-- in the last published week's ranking (public numbers, as in modules.sql),
-- then by the nodes the site runs each on; each module with its families, the
-- family on the most nodes first. 40 rows, as for modules: a site on one or
-- two families (most are) counts with its first 20 to 40 ranked modules.
-- keys: slug, platform
-- rows per site: 40
WITH ranking (slug, position) AS (:module_ranking),
per_module AS (
    SELECT site_week, slug, platform, nodes, MAX(nodes) OVER (PARTITION BY site_week, slug) AS module_nodes
    FROM site_week_module_platforms
    WHERE week = :week
),
bounded AS (
    SELECT p.slug, p.platform,
           ROW_NUMBER() OVER (PARTITION BY p.site_week ORDER BY COALESCE(r.position, :unranked),
                              p.module_nodes DESC, p.slug, p.nodes DESC, p.platform) AS n
    FROM per_module AS p LEFT JOIN ranking AS r ON r.slug = p.slug
)
SELECT slug, platform, COUNT(*) AS sites
FROM bounded
WHERE n <= :rows_per_site
GROUP BY slug, platform
ORDER BY slug, platform
