-- purpose: Ticket handling against promises: on-time rate, first contact within 2 hours
--   of dispatch, first-time success, by period, region and kind.
-- formula: handled = tickets with resolved_at; a ticket with a due_at is on time when
--   resolved by due_at, late when resolved after it or still unresolved once due_at has
--   passed (an open ticket past its deadline is late, not left out); pending = open
--   tickets whose due_at is still ahead of the newest event the tickets table holds
--   (their outcome is not known yet, and the row is provisional while there are any);
--   on-time rate = on time / (on time + late); first contact rate = contacted in time
--   (dispatched tickets first contacted within {contact_hours} h of dispatched_at) /
--   dispatched tickets;
--   first-time success = closed tickets that were resolved (status closed: not rejected
--   不予受理 or withdrawn 撤诉), never reopened, not repeated or escalated by a later
--   ticket (parent_ticket_id), and themselves a first complaint (not a repeat,
--   over-level or appeal) / closed tickets; median resolution hours over handled
--   tickets.
-- grain: one row per period (local day, week, month, quarter, half year or year of created_at) x region x kind
-- lookahead: all
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
-- param: contact_hours int 2 hours after dispatch within which the customer must be contacted
WITH followed AS (
    -- Tickets that a later ticket repeats or escalates.
    SELECT DISTINCT parent_ticket_id AS ticket_id FROM tickets WHERE parent_ticket_id IS NOT NULL
),
observed AS (
    -- The as-of time: the newest instant the tickets table records.
    SELECT greatest(max(created_at), max(resolved_at), max(closed_at)) AS as_of FROM tickets
),
t AS (
    SELECT
        local_trunc({{period}}, created_at) AS period,
        tickets.*,
        f.ticket_id IS NOT NULL AS followed_up,
        due_at IS NOT NULL AND resolved_at IS NOT NULL AND resolved_at <= due_at AS on_time,
        due_at IS NOT NULL AND (resolved_at > due_at OR (resolved_at IS NULL AND due_at < o.as_of)) AS late,
        due_at IS NOT NULL AND resolved_at IS NULL AND due_at >= o.as_of AS pending
    FROM tickets
    CROSS JOIN observed o
    LEFT JOIN followed f ON f.ticket_id = tickets.ticket_id
    WHERE created_at >= {{from:utc}}
      AND created_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
result AS (
    SELECT
        period,
        region,
        kind,
        count(*) AS tickets,
        count(resolved_at) AS handled,
        count(*) FILTER (WHERE on_time) AS on_time,
        count(*) FILTER (WHERE late) AS late,
        count(*) FILTER (WHERE late AND resolved_at IS NULL) AS overdue_open,
        count(*) FILTER (WHERE pending) AS pending,
        CAST(count(*) FILTER (WHERE on_time) AS DOUBLE)
            / nullif(count(*) FILTER (WHERE on_time OR late), 0) AS on_time_rate,
        count(dispatched_at) AS dispatched,
        count(*) FILTER (WHERE dispatched_at IS NOT NULL AND first_contact_at IS NOT NULL
                AND date_diff('microsecond', dispatched_at, first_contact_at) <= {{contact_hours}} * 3600000000) AS contacted_in_time,
        CAST(count(*) FILTER (WHERE dispatched_at IS NOT NULL AND first_contact_at IS NOT NULL
                AND date_diff('microsecond', dispatched_at, first_contact_at) <= {{contact_hours}} * 3600000000) AS DOUBLE)
            / nullif(count(dispatched_at), 0) AS first_contact_rate,
        count(closed_at) AS closed,
        CAST(count(*) FILTER (WHERE closed_at IS NOT NULL AND status = 'closed' AND reopened_count = 0
                AND NOT followed_up AND level = 'first') AS DOUBLE)
            / nullif(count(closed_at), 0) AS first_time_success_rate,
        median(CAST(date_part('epoch', resolved_at) - date_part('epoch', created_at) AS DOUBLE) / 3600.0)
            AS median_resolution_hours,
        count(*) FILTER (WHERE pending) > 0 AS provisional
    FROM t
    GROUP BY period, region, kind
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region, result.kind
