-- sites: how many sites reported this week (each site counts once, by its latest report).
-- keys:
-- rows per site: 1
SELECT COUNT(*) AS sites
FROM site_weeks
WHERE week = :week
