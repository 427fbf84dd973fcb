-- purpose: Branch-hall waiting and handling by branch and local hour: average and P90
--   wait, waits over 10 minutes, balking, long handling, and waits against each tier's
--   target.
-- formula: wait = called_at - arrived_at (visits called); average and P90 (continuous
--   percentile) in minutes; over 10 min share = waits > {announce_min} min / called;
--   balking rate = outcome 'balked' / all visits; handling = service_ended_at -
--   service_started_at, long = over {handling_min} min / served; over target = called
--   visits whose wait exceeds their tier's target (diamond {diamond_min}, gold
--   {gold_min}, silver {silver_min}, basic and unknown {basic_min} minutes) / called.
--   The counts behind the average and the over 10 min share come with them (wait_min_total,
--   over_announce), so that rows add up into any coarser grain: sum, then divide.
-- grain: one row per branch x local hour of arrival
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: region text % region code (LIKE pattern; % for all)
-- param: announce_min int 10 a wait over this many minutes must be announced
-- param: handling_min int 20 handling over this many minutes is flagged
-- param: diamond_min int 5 wait target of diamond customers, minutes
-- param: gold_min int 10 wait target of gold customers, minutes
-- param: silver_min int 15 wait target of silver customers, minutes
-- param: basic_min int 20 wait target of basic and unidentified customers, minutes
WITH v AS (
    SELECT
        region,
        branch_id,
        local_hour(arrived_at) AS hour,
        outcome,
        CAST(date_part('epoch', called_at) - date_part('epoch', arrived_at) AS DOUBLE) / 60.0 AS wait_min,
        date_diff('microsecond', arrived_at, called_at) AS wait_us,
        CAST(date_part('epoch', service_ended_at) - date_part('epoch', service_started_at) AS DOUBLE) / 60.0
            AS handling_min,
        CASE customer_tier
            WHEN 'diamond' THEN {{diamond_min}}
            WHEN 'gold' THEN {{gold_min}}
            WHEN 'silver' THEN {{silver_min}}
            ELSE {{basic_min}} END AS target_min
    FROM visits
    WHERE arrived_at >= {{from:utc}}
      AND arrived_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
result AS (
    SELECT
        region,
        branch_id,
        hour,
        count(*) AS visits,
        count(wait_min) AS called,
        count(*) FILTER (WHERE wait_min > {{announce_min}}) AS over_announce,
        CAST(sum(wait_us) AS DOUBLE) / 60000000.0 AS wait_min_total,
        -- Summed as integer microseconds: the mean does not depend on the read order.
        CAST(sum(wait_us) AS DOUBLE) / nullif(count(wait_us), 0) / 60000000.0 AS avg_wait_min,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_min) AS p90_wait_min,
        CAST(count(*) FILTER (WHERE wait_min > {{announce_min}}) AS DOUBLE) / nullif(count(wait_min), 0)
            AS over_announce_share,
        CAST(count(*) FILTER (WHERE outcome = 'balked') AS DOUBLE) / count(*) AS balking_rate,
        CAST(count(*) FILTER (WHERE handling_min > {{handling_min}}) AS DOUBLE)
            / nullif(count(handling_min), 0) AS long_handling_share,
        CAST(count(*) FILTER (WHERE wait_min > target_min) AS DOUBLE) / nullif(count(wait_min), 0)
            AS over_tier_target_share
    FROM v
    GROUP BY region, branch_id, hour
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_branch.name_zh, ''), result.branch_id) AS branch_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN org_units n_branch ON n_branch.unit_id = result.branch_id
ORDER BY result.region, result.branch_id, result.hour
