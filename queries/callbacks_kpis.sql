-- purpose: Callbacks (回访) after completed work orders and complaints: coverage,
--   timeliness, satisfaction, and manual follow-up of failed automatic callbacks.
-- formula: completed = tickets of kind 'work_order' or 'complaint' with resolved_at in
--   the period; coverage = completed tickets with at least one callback / completed;
--   same day = first callback on the local day of resolved_at; within 3 days = first
--   callback no later than resolved_at + {within_days} days (both / completed with a
--   callback; the counts are called_back_same_day and called_back_within_days, so that
--   rows add up into any coarser grain); satisfaction counts customers, not attempts: each completed ticket
--   counts once, with the score of its last reached callback that gave one (a
--   dissatisfied automatic callback followed by a manual one counts as the manual one's
--   score); satisfied and dissatisfied are such tickets, satisfaction = satisfied
--   tickets (very_satisfied or satisfied) / scored tickets; failed automatic =
--   auto_voice or sms callbacks with status no_answer; followed up = those whose
--   ticket got a manual callback afterwards. A row is provisional while the
--   {within_days} days after one of its tickets' resolution run past the newest
--   callback the warehouse holds (callbacks may still come).
-- grain: one row per period (local day, week, month, quarter, half year or year of resolved_at) x region
-- lookahead: 1 month
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: within_days int 3 days after completion a callback may take
WITH done AS (
    SELECT ticket_id, region, resolved_at,
           local_trunc({{period}}, resolved_at) AS period
    FROM tickets
    WHERE kind IN ('work_order', 'complaint')
      AND resolved_at >= {{from:utc}}
      AND resolved_at < {{to:utc}}
      AND created_at < {{to:utc}}
      AND region LIKE {{region}}
),
last_manual AS (
    SELECT ticket_id, max(performed_at) AS last_manual_at
    FROM callbacks
    WHERE method = 'manual'
    GROUP BY ticket_id
),
callbacks_of_done AS (
    -- Each completed ticket with each of its callbacks (or none), and the time of the
    -- ticket's last manual callback: the tickets are read once. The last manual callback
    -- is joined first, so that each hash join holds the tickets (1.07 M at 1 M
    -- customers) rather than the tickets already multiplied by their callbacks (1.4 M
    -- rows of ten columns, 281 MB): the joins' CPU 1.22 -> 0.62 s there, the query
    -- 0.91 -> 0.84 s at 0.83 -> 0.70 GB peak.
    SELECT d.ticket_id, d.period, d.region, d.resolved_at,
           c.callback_id, c.performed_at, c.method, c.status, c.score, m.last_manual_at
    FROM done d
    LEFT JOIN last_manual m ON m.ticket_id = d.ticket_id
    LEFT JOIN callbacks c ON c.ticket_id = d.ticket_id
),
per_ticket AS (
    SELECT ticket_id, period, region, resolved_at,
           min(performed_at) AS first_callback_at,
           count(callback_id) AS callbacks,
           -- The last score the customer gave (two at one instant: the more favourable).
           max_by(score, performed_at) FILTER (WHERE score IS NOT NULL) AS last_score,
           count(*) FILTER (WHERE method IN ('auto_voice', 'sms') AND status = 'no_answer')
               AS failed_automatic,
           count(*) FILTER (WHERE method IN ('auto_voice', 'sms') AND status = 'no_answer'
                              AND last_manual_at > performed_at) AS failed_followed_up
    FROM callbacks_of_done
    GROUP BY ticket_id, period, region, resolved_at
),
observed AS (
    SELECT max(performed_at) AS last_callback FROM callbacks
),
result AS (
    SELECT
        p.period,
        p.region,
        count(*) AS completed,
        count(p.first_callback_at) AS called_back,
        count(*) FILTER (WHERE local_date(p.first_callback_at) = local_date(p.resolved_at)) AS called_back_same_day,
        count(*) FILTER (WHERE date_diff('microsecond', p.resolved_at, p.first_callback_at) <= {{within_days}} * 86400000000) AS called_back_within_days,
        CAST(count(p.first_callback_at) AS DOUBLE) / count(*) AS coverage,
        CAST(count(*) FILTER (WHERE local_date(p.first_callback_at) = local_date(p.resolved_at)) AS DOUBLE)
            / nullif(count(p.first_callback_at), 0) AS same_day_rate,
        CAST(count(*) FILTER (WHERE date_diff('microsecond', p.resolved_at, p.first_callback_at) <= {{within_days}} * 86400000000) AS DOUBLE)
            / nullif(count(p.first_callback_at), 0) AS within_days_rate,
        -- No callbacks at all: no scores to count (null), not zero.
        CASE WHEN sum(p.callbacks) > 0 THEN count(*) FILTER (WHERE p.last_score IN ('very_satisfied', 'satisfied')) END AS satisfied,
        CASE WHEN sum(p.callbacks) > 0 THEN count(*) FILTER (WHERE p.last_score = 'dissatisfied') END AS dissatisfied,
        CAST(count(*) FILTER (WHERE p.last_score IN ('very_satisfied', 'satisfied')) AS DOUBLE)
            / nullif(count(p.last_score), 0) AS satisfaction,
        sum(p.failed_automatic) AS failed_automatic,
        sum(p.failed_followed_up) AS failed_followed_up,
        coalesce(date_diff('microsecond', max(p.resolved_at), max(o.last_callback)) < {{within_days}} * 86400000000, true)
            AS provisional
    FROM per_ticket p
    CROSS JOIN observed o
    GROUP BY p.period, p.region
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region
