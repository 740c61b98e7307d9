-- The narrow tables as BigQuery views over a `reports` table in the layout of
-- `dropsonde dev schema` (what `dev example` writes and `bq load` loads), so
-- that the weekly queries in ../ run there unchanged but for the parameter
-- syntax (@week instead of :week). Replace `telemetry` with your dataset.
-- As in the collector: each site counts once a week, by its latest report,
-- and counts are clamped to 0..10^9.

CREATE OR REPLACE VIEW telemetry.site_weeks AS
SELECT message_id AS id, week, site_id, message_id, timestamp AS received,
       LEAST(GREATEST(environment_count, 0), 1000000000) AS environment_count
FROM (SELECT *, FORMAT_TIMESTAMP('%G-W%V', timestamp, 'UTC') AS week,
             ROW_NUMBER() OVER (PARTITION BY site_id, FORMAT_TIMESTAMP('%G-W%V', timestamp, 'UTC')
                                ORDER BY timestamp DESC, message_id DESC) AS newest
      FROM telemetry.reports)
WHERE newest = 1;

CREATE OR REPLACE VIEW telemetry.site_week_modules AS
SELECT DISTINCT w.week, w.id AS site_week, m.slug, m.version
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id, UNNEST(r.modules) AS m;

CREATE OR REPLACE VIEW telemetry.site_week_classes AS
SELECT w.week, w.id AS site_week, c.name, LEAST(SUM(GREATEST(c.count, 0)), 1000000000) AS nodes
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id, UNNEST(r.classes) AS c
GROUP BY w.week, w.id, c.name;

CREATE OR REPLACE VIEW telemetry.site_week_platforms AS
SELECT DISTINCT w.week, w.id AS site_week, p.platform
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id,
     UNNEST(r.class_platforms) AS p;

-- A class runs its module (the listed slugs whose name part is the class's first
-- segment) on a family; the module's nodes there are its busiest class's.
CREATE OR REPLACE VIEW telemetry.site_week_module_platforms AS
SELECT w.week, w.id AS site_week, m.slug, p.platform, LEAST(MAX(GREATEST(p.count, 0)), 1000000000) AS nodes
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id,
     UNNEST(r.class_platforms) AS p, UNNEST(r.modules) AS m
WHERE STRPOS(m.slug, '-') > 0
  AND SPLIT(LTRIM(LOWER(p.name), ':'), '::')[SAFE_OFFSET(0)] = SUBSTR(m.slug, STRPOS(m.slug, '-') + 1)
GROUP BY w.week, w.id, m.slug, p.platform;

CREATE OR REPLACE VIEW telemetry.site_week_dependencies AS
SELECT DISTINCT w.week, w.id AS site_week, d.name
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id, UNNEST(r.dependencies) AS d;

CREATE OR REPLACE VIEW telemetry.site_week_profile_classes AS
SELECT DISTINCT w.week, w.id AS site_week, p.name
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id,
     UNNEST(r.profile_classes) AS p;

CREATE OR REPLACE VIEW telemetry.site_week_puppetfile_methods AS
SELECT w.week, w.id AS site_week, p.name, LEAST(SUM(GREATEST(p.count, 0)), 1000000000) AS calls
FROM telemetry.site_weeks AS w JOIN telemetry.reports AS r ON r.message_id = w.message_id,
     UNNEST(r.puppetfile_ruby_methods) AS p
GROUP BY w.week, w.id, p.name;
