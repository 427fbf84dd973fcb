-- purpose: Hot spots: categories whose weekly complaints jump far above their trailing
--   level (e.g. after a system go-live or a fee change).
-- formula: weekly complaints per region and category (weeks start Monday, local time);
--   trailing level = mean of the previous {weeks} weeks (weeks without complaints count
--   as 0); a hot spot is a week with complaints >= {min_count} and complaints >=
--   {factor} x trailing level (or any complaints >= {min_count} after a silent trail).
-- grain: one row per region x category x week that is a hot spot
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
-- param: weeks int 8 trailing weeks
-- param: factor float 2.0 how many times the trailing level makes a hot spot
-- param: min_count int 5 fewest complaints in a week to flag
WITH weeks AS (
    SELECT CAST(value AS DATE) AS week
    FROM (SELECT unnest(generate_series(
        date_trunc('week', CAST({{from}} AS TIMESTAMP)) - {{weeks:weeks}},
        CAST({{to}} AS TIMESTAMP) - INTERVAL '1 day',
        INTERVAL '7 days')) AS value)
),
counts AS (
    SELECT
        local_trunc('week', created_at) AS week,
        region,
        category,
        count(*) AS complaints
    FROM tickets
    WHERE kind = 'complaint'
      AND created_at >= {{from:utc}} - {{weeks:weeks}} - INTERVAL '7 days'
      AND created_at < {{to:utc}}
      AND region LIKE {{region}}
    GROUP BY 1, region, category
),
series AS (
    SELECT w.week, k.region, k.category, coalesce(c.complaints, 0) AS complaints
    FROM weeks w
    CROSS JOIN (SELECT DISTINCT region, category FROM counts) k
    LEFT JOIN counts c ON c.week = w.week AND c.region = k.region AND c.category = k.category
),
trail AS (
    SELECT
        week,
        region,
        category,
        complaints,
        avg(complaints) OVER (
            PARTITION BY region, category ORDER BY week
            ROWS BETWEEN {{weeks}} PRECEDING AND 1 PRECEDING) AS trailing_level
    FROM series
),
result AS (
    SELECT week, region, category, complaints, trailing_level,
           CAST(complaints AS DOUBLE) / nullif(trailing_level, 0) AS ratio
    FROM trail
    WHERE week >= CAST(date_trunc('week', CAST({{from}} AS TIMESTAMP)) AS DATE)
      AND complaints >= {{min_count}}
      AND complaints >= {{factor}} * trailing_level
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_category.name_zh, ''), result.category) AS category_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN categories n_category ON n_category.category = result.category
ORDER BY result.week, result.region, result.category
