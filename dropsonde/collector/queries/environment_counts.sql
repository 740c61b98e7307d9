-- environment_counts: sites by number of directory environments, in buckets
-- (each site is in exactly one bucket, so a bucket is a count of sites).
-- keys: environments
-- rows per site: 1
SELECT environments, COUNT(*) AS sites
FROM (SELECT environment_count,
             CASE WHEN environment_count <= 1 THEN '0-1' WHEN environment_count <= 5 THEN '2-5'
                  WHEN environment_count <= 10 THEN '6-10' WHEN environment_count <= 25 THEN '11-25'
                  WHEN environment_count <= 50 THEN '26-50' WHEN environment_count <= 100 THEN '51-100'
                  ELSE '101+' END AS environments
      FROM site_weeks
      WHERE week = :week AND environment_count IS NOT NULL) AS bucketed
GROUP BY environments
ORDER BY MIN(environment_count)
