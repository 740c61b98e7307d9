-- modules_per_site: sites by number of distinct public modules installed, in buckets.
-- keys: modules
-- rows per site: 1
SELECT modules, COUNT(*) AS sites
FROM (SELECT COUNT(DISTINCT m.slug) AS installed,
             CASE WHEN COUNT(DISTINCT m.slug) = 0 THEN '0' WHEN COUNT(DISTINCT m.slug) <= 10 THEN '1-10'
                  WHEN COUNT(DISTINCT m.slug) <= 25 THEN '11-25' WHEN COUNT(DISTINCT m.slug) <= 50 THEN '26-50'
                  WHEN COUNT(DISTINCT m.slug) <= 100 THEN '51-100' WHEN COUNT(DISTINCT m.slug) <= 200 THEN '101-200'
                  ELSE '201+' END AS modules
      FROM site_weeks AS w
      LEFT JOIN site_week_modules AS m ON m.week = w.week AND m.site_week = w.id
      WHERE w.week = :week
      GROUP BY w.id) AS per_site
GROUP BY modules
ORDER BY MIN(installed)
