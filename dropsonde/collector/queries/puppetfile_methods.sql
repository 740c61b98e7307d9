-- puppetfile_methods: Ruby methods called in Puppetfiles, by how many sites and how often.
-- A site counts for its :rows_per_site most called methods (then by name); its
-- call count is bucketed down to 1, 2, 5, 10, 20, 50 and clipped at 100.
-- keys: name
-- rows per site: 10
-- sums: calls=100
WITH bounded AS (
    SELECT name, calls, ROW_NUMBER() OVER (PARTITION BY site_week ORDER BY calls DESC, name) AS n
    FROM site_week_puppetfile_methods
    WHERE week = :week
)
SELECT name, COUNT(*) AS sites,
       SUM(CASE WHEN calls >= 100 THEN 100 WHEN calls >= 50 THEN 50 WHEN calls >= 20 THEN 20
                WHEN calls >= 10 THEN 10 WHEN calls >= 5 THEN 5 WHEN calls >= 2 THEN 2
                ELSE calls END) AS calls
FROM bounded
WHERE n <= :rows_per_site
GROUP BY name
ORDER BY name
