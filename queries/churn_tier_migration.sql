-- purpose: Tier migration month over month (e.g. gold → silver), and how many of each
--   tier stay.
-- formula: a customer's tier in a month = the customer_tier on their last call, ticket
--   or visit of that local month (max_by; two at the same instant: the larger tier
--   name); a migration is the tier of one month against the
--   tier of the next month in which the customer is seen again (at most {gap} months
--   later); share = customers moving from→to / customers of the from tier.
-- grain: one row per month (of the later observation) x region x from tier x to tier
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-07-01 end local day, exclusive
-- param: gap int 3 months between two observations at most
-- param: region text % region code (LIKE pattern; % for all)
WITH seen AS (
    SELECT customer_id, region, customer_tier AS tier, ivr_entered_at AS event_at FROM calls
        WHERE customer_id IS NOT NULL AND customer_tier IS NOT NULL
          AND ivr_entered_at >= {{from:utc}} AND ivr_entered_at < {{to:utc}}
    UNION ALL
    SELECT customer_id, region, customer_tier, created_at FROM tickets
        WHERE customer_id IS NOT NULL AND customer_tier IS NOT NULL
          AND created_at >= {{from:utc}} AND created_at < {{to:utc}}
    UNION ALL
    SELECT customer_id, region, customer_tier, arrived_at FROM visits
        WHERE customer_id IS NOT NULL AND customer_tier IS NOT NULL
          AND arrived_at >= {{from:utc}} AND arrived_at < {{to:utc}}
),
monthly AS (
    SELECT customer_id,
           local_trunc('month', event_at) AS month,
           max_by(region, event_at) AS region,
           max_by(tier, event_at) AS tier
    FROM seen
    WHERE region LIKE {{region}}
    GROUP BY customer_id, 2
),
pairs AS (
    SELECT customer_id, region, month, tier,
           lag(tier) OVER by_customer AS from_tier,
           lag(month) OVER by_customer AS from_month
    FROM monthly
    WINDOW by_customer AS (PARTITION BY customer_id ORDER BY month)
),
result AS (
    SELECT month, region, from_tier, tier AS to_tier, count(*) AS customers,
           CAST(count(*) AS DOUBLE) / sum(count(*)) OVER (PARTITION BY month, region, from_tier) AS share
    FROM pairs
    WHERE from_tier IS NOT NULL
      AND date_diff('month', from_month, month) <= {{gap}}
    GROUP BY month, region, from_tier, tier
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.month, result.region, result.from_tier, result.to_tier
