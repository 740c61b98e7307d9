-- platforms: how many sites have nodes of each OS family.
-- keys: platform
-- noise: sites=1
SELECT platform, COUNT(*) AS sites
FROM site_week_platforms
WHERE week = :week
GROUP BY platform
HAVING COUNT(*) >= :k
ORDER BY platform
