-- purpose: The top reasons customers give when a callback finds them dissatisfied.
-- formula: dissatisfied callbacks = callbacks with score 'dissatisfied' performed in
--   the period; share = the reason's count / all dissatisfied callbacks of the period
--   and region; a missing reason is reported as '(none given)'.
-- grain: one row per period (local day, week, month, quarter, half year or year of performed_at) x region x reason, top {top} per period and region
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: top int 5 reasons per period and region
WITH d AS (
    SELECT
        local_trunc({{period}}, performed_at) AS period,
        region,
        coalesce(nullif(trim(reason), ''), '(none given)') AS reason
    FROM callbacks
    WHERE score = 'dissatisfied'
      AND performed_at >= {{from:utc}}
      AND performed_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
ranked AS (
    SELECT period, region, reason, count(*) AS dissatisfied,
           CAST(count(*) AS DOUBLE) / sum(count(*)) OVER (PARTITION BY period, region) AS share,
           row_number() OVER (PARTITION BY period, region ORDER BY count(*) DESC, reason) AS rank
    FROM d
    GROUP BY period, region, reason
),
result AS (
    SELECT period, region, rank, reason, dissatisfied, share
    FROM ranked
    WHERE rank <= {{top}}
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region, result.rank
