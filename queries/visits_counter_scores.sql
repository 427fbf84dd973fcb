-- purpose: Counter satisfaction (柜台评价): the scores customers give on the counter pad
--   after being served, per period, region and branch.
-- formula: served = visits with outcome 'served' by local day of arrived_at; scored =
--   served visits with a score (1 worst to 5 best); survey rate = scored / served; mean
--   score = mean of the scores; satisfied share = scores of 4 or 5 / scored;
--   dissatisfied = scores of 1 or 2.
-- grain: one row per period (local day, week, month, quarter, half year or year) x region x branch with served visits
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH s AS (
    SELECT
        local_trunc({{period}}, arrived_at) AS period,
        region,
        branch_id,
        count(*) AS served,
        count(score) AS scored,
        avg(score) AS mean_score,
        count(*) FILTER (WHERE score >= 4) AS satisfied,
        count(*) FILTER (WHERE score <= 2) AS dissatisfied
    FROM visits
    WHERE outcome = 'served'
      AND arrived_at >= {{from:utc}}
      AND arrived_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region, branch_id
),
result AS (
    SELECT
        s.period,
        s.region,
        s.branch_id,
        s.served,
        s.scored,
        CAST(s.scored AS DOUBLE) / s.served AS survey_rate,
        s.mean_score,
        CAST(s.satisfied AS DOUBLE) / nullif(s.scored, 0) AS satisfied_share,
        s.dissatisfied
    FROM s
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_branch.name_zh, ''), result.branch_id) AS branch_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN org_units n_branch ON n_branch.unit_id = result.branch_id
ORDER BY result.period, result.region, result.branch_id
