-- purpose: Queue length in branch halls over time: how many customers were waiting, how
--   long more than {limit} waited at once (more than 5 waiting triggers action: open a
--   window, guide customers to self-service) and how many arrivals found such a queue.
-- formula: a customer waits from arrived_at until called_at; customers who left before
--   being called (balked, no called_at) are arrivals that saw the queue but are not
--   counted as waiting. waiting = customers waiting in the branch after each arrival or
--   call, in time order (a call at the same instant as an arrival first); peak = the most
--   waiting at once; minutes over limit = time during which more than {limit} were
--   waiting; days over limit = local days with such a moment; arrivals over limit =
--   arrivals who found more than {limit} already waiting, / arrivals for the share.
--   Time is counted in the period of the moment it starts.
-- grain: one row per period (local day, week, month, quarter, half year or year of the moment) x region x branch
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: limit int 5 customers waiting at once that call for action
WITH v AS (
    SELECT region, branch_id, arrived_at, called_at
    FROM visits
    WHERE arrived_at >= {{from:utc}}
      AND arrived_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
events AS (
    -- +1 when a customer starts waiting, 0 for one who leaves at once, -1 when called.
    SELECT region, branch_id, arrived_at AS moment, CASE WHEN called_at IS NULL THEN 0 ELSE 1 END AS delta,
           1 AS arrival
    FROM v
    UNION ALL
    SELECT region, branch_id, called_at, -1, 0
    FROM v
    WHERE called_at IS NOT NULL
),
queue AS (
    SELECT region, branch_id, moment, delta, arrival,
           sum(delta) OVER (PARTITION BY branch_id ORDER BY moment, delta
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS waiting,
           lead(moment) OVER (PARTITION BY branch_id ORDER BY moment, delta) AS next_at
    FROM events
),
result AS (
    SELECT
        local_trunc({{period}}, moment) AS period,
        region,
        branch_id,
        sum(arrival) AS arrivals,
        max(waiting) AS peak_waiting,
        -- Summed as integer microseconds: the total does not depend on the read order.
        coalesce(CAST(sum(date_diff('microsecond', moment, next_at))
            FILTER (WHERE waiting > {{limit}}) AS DOUBLE) / 60000000.0, 0) AS minutes_over_limit,
        count(DISTINCT local_date(moment)) FILTER (WHERE waiting > {{limit}}) AS days_over_limit,
        count(*) FILTER (WHERE arrival = 1 AND waiting - delta > {{limit}}) AS arrivals_over_limit,
        CAST(count(*) FILTER (WHERE arrival = 1 AND waiting - delta > {{limit}}) AS DOUBLE)
            / nullif(sum(arrival), 0) AS arrivals_over_limit_share
    FROM queue
    WHERE moment < {{to:utc}}
    GROUP BY 1, region, branch_id
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name,
       coalesce(nullif(n_branch.name_zh, ''), result.branch_id) AS branch_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
LEFT JOIN org_units n_branch ON n_branch.unit_id = result.branch_id
ORDER BY 1, result.region, result.branch_id
