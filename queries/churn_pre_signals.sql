-- purpose: Pre-churn signals: how churners behaved in the {days} days before leaving,
--   against retained customers over the same length of time.
-- formula: churners = customers with closed_at in the range, window = the {days} days
--   before closed_at; retained = customers open at {to}, window = the {days} days
--   before {to}; per group: customers, and per customer the average complaints,
--   repeat/over-level complaints, unresolved tickets (not resolved by the window's
--   end), dissatisfied callbacks, calls, and the mean call wait in seconds. The totals
--   behind the averages come first (complaints, escalated, unresolved, dissatisfied,
--   calls), so that rows add up into any coarser grain: sum, then divide by customers.
-- grain: one row per group (churned, retained) x region
-- param: from date 2026-01-01 first local day of closures, inclusive
-- param: to date 2026-07-01 end local day, exclusive
-- param: days int 90 window before the closure (or before {to})
-- param: region text % region code (LIKE pattern; % for all)
WITH people AS (
    SELECT customer_id, region,
           CASE WHEN closed_at >= {{from:utc}} AND closed_at < {{to:utc}} THEN 'churned' ELSE 'retained' END AS grp,
           CASE WHEN closed_at >= {{from:utc}} AND closed_at < {{to:utc}} THEN closed_at ELSE {{to:utc}} END AS window_end
    FROM customers
    WHERE region LIKE {{region}}
      AND opened_at < {{to:utc}}
      AND (closed_at IS NULL OR closed_at >= {{from:utc}})
),
-- Most people are retained, all with the same window (the {days} days before {to}):
-- their events are counted without a join; only the churners' own windows need one.
t AS (
    SELECT customer_id, 'retained' AS grp,
           count(*) FILTER (WHERE kind = 'complaint') AS complaints,
           count(*) FILTER (WHERE kind = 'complaint' AND level IN ('repeat', 'over_level')) AS escalated,
           count(*) FILTER (WHERE resolved_at IS NULL OR resolved_at >= {{to:utc}}) AS unresolved
    FROM tickets
    WHERE customer_id IS NOT NULL
      AND created_at >= {{to:utc}} - {{days:days}} AND created_at < {{to:utc}}
    GROUP BY customer_id
    UNION ALL
    SELECT p.customer_id, 'churned',
           count(*) FILTER (WHERE x.kind = 'complaint'),
           count(*) FILTER (WHERE x.kind = 'complaint' AND x.level IN ('repeat', 'over_level')),
           count(*) FILTER (WHERE x.resolved_at IS NULL OR x.resolved_at >= p.window_end)
    FROM people p JOIN tickets x ON x.customer_id = p.customer_id
    WHERE p.grp = 'churned'
      AND x.created_at >= p.window_end - {{days:days}} AND x.created_at < p.window_end
      -- Implied by the line above (every window ends in [from, to]); constant, so it
      -- prunes files and row groups before the join.
      AND x.created_at >= {{from:utc}} - {{days:days}} AND x.created_at < {{to:utc}}
    GROUP BY p.customer_id
),
cb AS (
    SELECT customer_id, 'retained' AS grp, count(*) AS dissatisfied
    FROM callbacks
    WHERE score = 'dissatisfied' AND customer_id IS NOT NULL
      AND performed_at >= {{to:utc}} - {{days:days}} AND performed_at < {{to:utc}}
    GROUP BY customer_id
    UNION ALL
    SELECT p.customer_id, 'churned', count(*)
    FROM people p JOIN callbacks x ON x.customer_id = p.customer_id
    WHERE p.grp = 'churned' AND x.score = 'dissatisfied'
      AND x.performed_at >= p.window_end - {{days:days}} AND x.performed_at < p.window_end
      AND x.performed_at >= {{from:utc}} - {{days:days}} AND x.performed_at < {{to:utc}}
    GROUP BY p.customer_id
),
c AS (
    SELECT customer_id, 'retained' AS grp, count(*) AS calls, sum(wait_s) AS wait_total,
           count(wait_s) AS waits
    FROM calls
    WHERE customer_id IS NOT NULL
      AND ivr_entered_at >= {{to:utc}} - {{days:days}} AND ivr_entered_at < {{to:utc}}
    GROUP BY customer_id
    UNION ALL
    SELECT p.customer_id, 'churned', count(*), sum(x.wait_s), count(x.wait_s)
    FROM people p JOIN calls x ON x.customer_id = p.customer_id
    WHERE p.grp = 'churned'
      AND x.ivr_entered_at >= p.window_end - {{days:days}} AND x.ivr_entered_at < p.window_end
      AND x.ivr_entered_at >= {{from:utc}} - {{days:days}} AND x.ivr_entered_at < {{to:utc}}
    GROUP BY p.customer_id
),
result AS (
    SELECT
        p.grp AS customer_group,
        p.region,
        count(*) AS customers,
        sum(coalesce(t.complaints, 0)) AS complaints,
        sum(coalesce(t.escalated, 0)) AS escalated,
        sum(coalesce(t.unresolved, 0)) AS unresolved,
        sum(coalesce(cb.dissatisfied, 0)) AS dissatisfied,
        sum(coalesce(c.calls, 0)) AS calls,
        avg(coalesce(t.complaints, 0)) AS complaints_per_customer,
        avg(coalesce(t.escalated, 0)) AS escalated_per_customer,
        avg(coalesce(t.unresolved, 0)) AS unresolved_per_customer,
        avg(coalesce(cb.dissatisfied, 0)) AS dissatisfied_per_customer,
        avg(coalesce(c.calls, 0)) AS calls_per_customer,
        CAST(sum(c.wait_total) AS DOUBLE) / nullif(sum(c.waits), 0) AS mean_wait_s
    FROM people p
    LEFT JOIN t ON t.customer_id = p.customer_id AND t.grp = p.grp
    LEFT JOIN cb ON cb.customer_id = p.customer_id AND cb.grp = p.grp
    LEFT JOIN c ON c.customer_id = p.customer_id AND c.grp = p.grp
    GROUP BY p.grp, p.region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.customer_group, result.region
