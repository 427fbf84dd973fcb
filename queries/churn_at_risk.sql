-- purpose: The current at-risk customer list: open customers showing the signals that
--   precede churn in the {days} days before {as_of}.
-- formula: signals per customer in the window: complaints, repeat or over-level
--   complaints, tickets still unresolved, dissatisfied callbacks, calls that waited
--   over {long_wait_s} s or were abandoned; risk score = 3 x over-level/repeat + 2 x
--   dissatisfied + 2 x unresolved + complaints + 0.5 x long waits; customers with a
--   score of at least {min_score}, highest first.
-- grain: one row per open customer at or over the score, up to {top}
-- param: as_of date 2026-07-01 end of the window, exclusive
-- param: days int 90 window length in days
-- param: long_wait_s int 60 a call waiting longer counts as a long wait
-- param: min_score float 3 lowest score listed
-- param: top int 100 customers listed at most
-- param: region text % region code (LIKE pattern; % for all)
WITH signals AS (
    -- One row per signal-bearing event, so one aggregate and one join serve them all.
    SELECT customer_id,
           CASE WHEN kind = 'complaint' THEN 1 ELSE 0 END AS complaints,
           CASE WHEN kind = 'complaint' AND level IN ('repeat', 'over_level') THEN 1 ELSE 0 END
               AS escalated,
           CASE WHEN resolved_at IS NULL OR resolved_at >= {{as_of:utc}} THEN 1 ELSE 0 END
               AS unresolved,
           0 AS dissatisfied,
           0 AS long_waits
    FROM tickets
    WHERE customer_id IS NOT NULL
      AND created_at >= {{as_of:utc}} - {{days:days}} AND created_at < {{as_of:utc}}
    UNION ALL
    SELECT customer_id, 0, 0, 0, 1, 0
    FROM callbacks
    WHERE customer_id IS NOT NULL AND score = 'dissatisfied'
      AND performed_at >= {{as_of:utc}} - {{days:days}} AND performed_at < {{as_of:utc}}
    UNION ALL
    -- Only the calls that count: long waits and abandons.
    SELECT customer_id, 0, 0, 0, 0, 1
    FROM calls
    WHERE customer_id IS NOT NULL
      AND (wait_s > {{long_wait_s}} OR outcome = 'abandoned')
      AND ivr_entered_at >= {{as_of:utc}} - {{days:days}} AND ivr_entered_at < {{as_of:utc}}
),
per_customer AS (
    SELECT customer_id, sum(complaints) AS complaints, sum(escalated) AS escalated,
           sum(unresolved) AS unresolved, sum(dissatisfied) AS dissatisfied,
           sum(long_waits) AS long_waits
    FROM signals
    GROUP BY customer_id
),
scored AS (
    SELECT k.customer_id, k.region, k.branch_id, k.segment, k.tier,
           coalesce(s.complaints, 0) AS complaints,
           coalesce(s.escalated, 0) AS escalated_complaints,
           coalesce(s.unresolved, 0) AS unresolved_tickets,
           coalesce(s.dissatisfied, 0) AS dissatisfied_callbacks,
           coalesce(s.long_waits, 0) AS long_waits,
           3.0 * coalesce(s.escalated, 0) + 2.0 * coalesce(s.dissatisfied, 0)
             + 2.0 * coalesce(s.unresolved, 0) + coalesce(s.complaints, 0)
             + 0.5 * coalesce(s.long_waits, 0) AS risk_score
    FROM customers k
    LEFT JOIN per_customer s ON s.customer_id = k.customer_id
    WHERE (k.closed_at IS NULL OR k.closed_at >= {{as_of:utc}})
      AND k.opened_at < {{as_of:utc}}
      AND k.region LIKE {{region}}
),
result AS (
    SELECT * FROM scored
    WHERE risk_score >= {{min_score}}
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.risk_score DESC, result.customer_id LIMIT {{top}}
