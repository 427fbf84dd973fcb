-- purpose: Special-needs services (elderly, mobility, visual, hearing, …) per branch and
--   month, with their waits.
-- formula: services = visits with special_needs other than 'none' by local month of
--   arrival; served = outcome 'served'; average wait = mean of called_at - arrived_at
--   in minutes.
-- grain: one row per month x region x branch x special-needs type
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
WITH result AS (
    SELECT
        local_trunc('month', arrived_at) AS month_start,
        region,
        branch_id,
        special_needs,
        count(*) AS visits,
        count(*) FILTER (WHERE outcome = 'served') AS served,
        -- Summed as integer microseconds: the mean does not depend on the read order.
        CAST(sum(date_diff('microsecond', arrived_at, called_at)) AS DOUBLE)
            / nullif(count(called_at), 0) / 60000000.0 AS avg_wait_min
    FROM visits
    WHERE special_needs <> 'none'
      AND arrived_at >= {{from:utc}}
      AND arrived_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region, branch_id, special_needs
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_branch.name_zh, ''), result.branch_id) AS branch_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN org_units n_branch ON n_branch.unit_id = result.branch_id
ORDER BY 1, result.region, result.branch_id, result.special_needs
