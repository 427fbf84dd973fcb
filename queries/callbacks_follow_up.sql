-- purpose: Manual follow-up of callbacks that require one: every failed automatic
--   callback (no answer) and every dissatisfied one must be followed by a manual
--   callback (人工回访) — how many were, how soon, and how many were not.
-- formula: needing = callbacks performed in the period that are automatic (auto_voice or
--   sms) with status no_answer (need 'no_answer'), or that were scored dissatisfied by
--   any method (need 'dissatisfied': a dissatisfied manual callback needs a further
--   one); the callback's subject is its ticket, else its call, else its customer; its
--   follow-up = the first manual callback about the same subject after it. followed up
--   = needing with a follow-up; in time = follow-up no later than {within_days} days
--   after; rate = followed up / needing; hours = median hours to the follow-up; not
--   followed up = needing without one. A row is provisional while one of its callbacks
--   without a follow-up is less than {within_days} days older than the newest callback
--   the warehouse holds (its follow-up may still come).
-- grain: one row per period (local day, week, month, quarter, half year or year of performed_at) x region x need
-- lookahead: all
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: within_days int 3 days a follow-up may take
WITH cb AS (
    SELECT callback_id, region, method, status, score, performed_at,
           CASE WHEN ticket_id IS NOT NULL THEN 'ticket ' || ticket_id
                WHEN call_id IS NOT NULL THEN 'call ' || call_id
                WHEN customer_id IS NOT NULL THEN 'customer ' || customer_id END AS subject
    FROM callbacks
    WHERE performed_at >= {{from:utc}}
      AND region LIKE {{region}}
),
needing AS (
    SELECT callback_id, region, subject, performed_at,
           local_trunc({{period}}, performed_at) AS period,
           CASE WHEN score = 'dissatisfied' THEN 'dissatisfied' ELSE 'no_answer' END AS need
    FROM cb
    WHERE performed_at < {{to:utc}}
      AND (score = 'dissatisfied' OR (method IN ('auto_voice', 'sms') AND status = 'no_answer'))
),
follow_up AS (
    SELECT n.callback_id, min(m.performed_at) AS followed_at
    FROM needing n
    JOIN cb m ON m.subject = n.subject AND m.method = 'manual' AND m.performed_at > n.performed_at
    GROUP BY n.callback_id
),
observed AS (
    SELECT max(performed_at) AS last_callback FROM callbacks
),
result AS (
    SELECT
        n.period,
        n.region,
        n.need,
        count(*) AS needing,
        count(f.followed_at) AS followed_up,
        count(*) FILTER (WHERE date_diff('microsecond', n.performed_at, f.followed_at)
            <= {{within_days}} * 86400000000) AS in_time,
        CAST(count(f.followed_at) AS DOUBLE) / count(*) AS follow_up_rate,
        median(CAST(date_diff('microsecond', n.performed_at, f.followed_at) AS DOUBLE) / 3600000000.0)
            AS median_hours,
        count(*) - count(f.followed_at) AS not_followed_up,
        coalesce(bool_or(f.followed_at IS NULL AND date_diff('microsecond', n.performed_at,
            o.last_callback) < {{within_days}} * 86400000000), false) AS provisional
    FROM needing n
    LEFT JOIN follow_up f ON f.callback_id = n.callback_id
    CROSS JOIN observed o
    GROUP BY n.period, n.region, n.need
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region, result.need
