-- classes: how many sites declare each public class, and on how many nodes.
-- A site counts for its :rows_per_site classes with the most nodes (then by
-- name). Its node count is bucketed down to 1, 2, 5, 10, 20, ... and clipped
-- at 100 before it is summed: one site moves each sum by at most 100.
-- keys: name
-- rows per site: 40
-- sums: nodes=100
WITH bounded AS (
    SELECT name, nodes, ROW_NUMBER() OVER (PARTITION BY site_week ORDER BY nodes DESC, name) AS n
    FROM site_week_classes
    WHERE week = :week
)
SELECT name, COUNT(*) AS sites,
       SUM(CASE WHEN nodes >= 100 THEN 100 WHEN nodes >= 50 THEN 50 WHEN nodes >= 20 THEN 20
                WHEN nodes >= 10 THEN 10 WHEN nodes >= 5 THEN 5 WHEN nodes >= 2 THEN 2
                ELSE nodes END) AS nodes
FROM bounded
WHERE n <= :rows_per_site
GROUP BY name
ORDER BY name
