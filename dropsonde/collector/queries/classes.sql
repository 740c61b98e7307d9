-- classes: how many sites declare each public class, and on how many nodes.
-- A site's node count is bucketed down to 1, 2, 5, 10, 20, ... and clipped at
-- 1000 before it is summed: one site moves the sum by at most 1000, which is
-- what the noise added to the sum is calibrated to.
-- keys: name
-- noise: sites=1 nodes=1000
SELECT name, COUNT(*) AS sites,
       SUM(CASE WHEN nodes >= 1000 THEN 1000 WHEN nodes >= 500 THEN 500 WHEN nodes >= 200 THEN 200
                WHEN nodes >= 100 THEN 100 WHEN nodes >= 50 THEN 50 WHEN nodes >= 20 THEN 20
                WHEN nodes >= 10 THEN 10 WHEN nodes >= 5 THEN 5 WHEN nodes >= 2 THEN 2
                ELSE nodes END) AS nodes
FROM site_week_classes
WHERE week = :week
GROUP BY name
HAVING COUNT(*) >= :k
ORDER BY name
