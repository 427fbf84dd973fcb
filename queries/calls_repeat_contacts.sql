-- purpose: Repeat contacts (a first-contact-resolution proxy): identified customers who
--   call again within N days of a handled call.
-- formula: handled contacts = answered inbound calls of identified customers (an
--   abandoned call is an attempt, not a contact: its redial is not a repeat of it and it
--   is not in the base); a handled call repeats when the same customer has another
--   handled call starting within {days} days after it started (calls after the range
--   count as the repeat, not as the base); repeat rate = repeated / handled.
-- grain: one row per period (local day, week, month, quarter, half year or year of the call) x region
-- lookahead: 1 month
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: days int 7 window after a call in which another call is a repeat
WITH handled AS (
    SELECT
        region,
        customer_id,
        ivr_entered_at,
        lead(ivr_entered_at) OVER (PARTITION BY customer_id ORDER BY ivr_entered_at, call_id)
            AS next_call_at
    FROM calls
    WHERE direction = 'inbound'
      AND answered_at IS NOT NULL
      AND customer_id IS NOT NULL
      AND ivr_entered_at >= {{from:utc}}
      AND ivr_entered_at < {{to:utc}} + {{days:days}}
      AND region LIKE {{region}}
),
result AS (
    SELECT
        local_trunc({{period}}, ivr_entered_at) AS period,
        region,
        count(*) AS handled,
        count(*) FILTER (WHERE date_diff('microsecond', ivr_entered_at, next_call_at) <= {{days}} * 86400000000) AS repeated,
        CAST(count(*) FILTER (WHERE date_diff('microsecond', ivr_entered_at, next_call_at) <= {{days}} * 86400000000) AS DOUBLE)
            / count(*) AS repeat_rate
    FROM handled
    WHERE ivr_entered_at < {{to:utc}}
    GROUP BY 1, region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY 1, result.region
