-- purpose: Complaints by severity (normal, serious 严重, major 重大) per period and region,
--   with how many were found justified and how many a regulator transferred.
-- formula: complaints = tickets of kind 'complaint' by local day of created_at; justified
--   = those with justified = true (undecided ones are not counted); regulator = source
--   regulator_transferred; share = the severity's complaints / the region's complaints of
--   the period.
-- grain: one row per period (local day, week, month, quarter, half year or year of created_at) x region x severity with complaints
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH result AS (
    SELECT
        local_trunc({{period}}, created_at) AS period,
        region,
        severity,
        count(*) AS complaints,
        count(*) FILTER (WHERE justified) AS justified,
        count(*) FILTER (WHERE source = 'regulator_transferred') AS regulator,
        CAST(count(*) AS DOUBLE)
            / sum(count(*)) OVER (PARTITION BY local_trunc({{period}}, created_at), region) AS share
    FROM tickets
    WHERE kind = 'complaint'
      AND created_at >= {{from:utc}}
      AND created_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region, severity
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY 1, result.region, result.severity
