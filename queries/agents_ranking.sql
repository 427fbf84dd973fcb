-- purpose: Ranking of front-line staff (hotline agents, counter staff, ticket handlers)
--   among their peers: contacts per working day, the scores customers gave, justified
--   complaints about them and the satisfaction of the callbacks on their work.
-- formula: contacts = inbound calls they answered (agent_id, local day of answered_at)
--   + branch visits they served (staff_id, local day of arrived_at); days = local days
--   with a contact; contacts per day = contacts / days; survey score = mean of those
--   contacts' scores (post-call survey or counter pad, 1-5). complaints = complaints
--   created in the period with justified = true about them (subject_staff_id). Callback
--   satisfaction: a callback judges the owner of its ticket (owner_id), else the agent
--   of its call; each ticket or call counts once per period with its last reached score
--   = (very_satisfied + satisfied) / scored. Peers = staff of the same region and role
--   (staff.role; 'unknown' for people the staff table does not list); ranks 1 = best:
--   most contacts per day, fewest complaints, highest satisfaction (ties share a rank;
--   NULL where the person has no such measure). staff_name = staff.name_zh, else the code.
-- grain: one row per period (local day, week, month, quarter, half year or year) x region x staff member with contacts, complaints or scored callbacks
-- param: from date 2026-01-01 first local day, inclusive
-- param: to date 2026-02-01 end local day, exclusive
-- param: period text month day, week, month, quarter, half (1 Jan-30 Jun, 1 Jul-31 Dec) or year
-- param: region text % region code (LIKE pattern; % for all)
WITH contacts AS (
    SELECT local_trunc({{period}}, answered_at) AS period, region, agent_id AS staff_id,
           local_date(answered_at) AS day, score
    FROM calls
    WHERE direction = 'inbound'
      AND agent_id IS NOT NULL
      AND answered_at >= {{from:utc}}
      AND answered_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    UNION ALL
    SELECT local_trunc({{period}}, arrived_at), region, staff_id, local_date(arrived_at), score
    FROM visits
    WHERE outcome = 'served'
      AND staff_id IS NOT NULL
      AND arrived_at >= {{from:utc}}
      AND arrived_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
),
daily AS (
    -- One row per person and local day first, so that working days are a count of rows
    -- (a DISTINCT count over millions of contacts is the slow way).
    SELECT period, region, staff_id, day, count(*) AS contacts,
           sum(score) AS score_sum, count(score) AS scores
    FROM contacts
    GROUP BY period, region, staff_id, day
),
work AS (
    SELECT period, region, staff_id, sum(contacts) AS contacts, count(*) AS days,
           CAST(sum(score_sum) AS DOUBLE) / nullif(sum(scores), 0) AS survey_score
    FROM daily
    GROUP BY period, region, staff_id
),
complaints AS (
    SELECT local_trunc({{period}}, created_at) AS period, region, subject_staff_id AS staff_id,
           count(*) AS complaints
    FROM tickets
    WHERE kind = 'complaint'
      AND justified
      AND subject_staff_id IS NOT NULL
      AND created_at >= {{from:utc}}
      AND created_at < {{to:utc}}
      AND month BETWEEN {{from:month}} AND {{to:month}}
      AND region LIKE {{region}}
    GROUP BY 1, region, subject_staff_id
),
judged AS (
    -- Each ticket or call called back in a period, with its last reached score and the
    -- person it judges. Inner joins, a branch each: a callback whose ticket or call names
    -- nobody judges no one, and the call branch's few callbacks are the build side that
    -- the ten million calls probe (a cluster then need not shuffle the calls).
    SELECT local_trunc({{period}}, c.performed_at) AS period, c.region,
           t.owner_id AS staff_id, 'ticket ' || c.ticket_id AS subject,
           max_by(c.score, c.performed_at) AS last_score
    FROM callbacks c
    JOIN tickets t ON t.ticket_id = c.ticket_id
    WHERE c.score IS NOT NULL
      AND t.owner_id IS NOT NULL
      AND c.performed_at >= {{from:utc}}
      AND c.performed_at < {{to:utc}}
      AND c.region LIKE {{region}}
    GROUP BY 1, c.region, 3, 4
    UNION ALL
    SELECT local_trunc({{period}}, c.performed_at) AS period, c.region,
           k.agent_id AS staff_id, 'call ' || c.call_id AS subject,
           max_by(c.score, c.performed_at) AS last_score
    FROM callbacks c
    JOIN calls k ON k.call_id = c.call_id
    WHERE c.score IS NOT NULL
      AND c.ticket_id IS NULL
      AND k.agent_id IS NOT NULL
      AND c.performed_at >= {{from:utc}}
      AND c.performed_at < {{to:utc}}
      AND c.region LIKE {{region}}
    GROUP BY 1, c.region, 3, 4
),
satisfaction AS (
    SELECT period, region, staff_id, count(*) AS scored,
           CAST(count(*) FILTER (WHERE last_score IN ('very_satisfied', 'satisfied')) AS DOUBLE)
               / count(*) AS callback_satisfaction
    FROM judged
    GROUP BY period, region, staff_id
),
people AS (
    -- The three measures side by side, one row per person: each computed once (a union
    -- of their keys joined back to them would compute each twice).
    SELECT period, region, staff_id,
           max(contacts) AS contacts, max(days) AS days, max(survey_score) AS survey_score,
           max(complaints) AS complaints, max(scored) AS scored,
           max(callback_satisfaction) AS callback_satisfaction
    FROM (
        SELECT period, region, staff_id, contacts, days, survey_score,
               CAST(NULL AS BIGINT) AS complaints, CAST(NULL AS BIGINT) AS scored,
               CAST(NULL AS DOUBLE) AS callback_satisfaction
        FROM work
        UNION ALL
        SELECT period, region, staff_id, NULL, NULL, NULL, complaints, NULL, NULL
        FROM complaints
        UNION ALL
        SELECT period, region, staff_id, NULL, NULL, NULL, NULL, scored, callback_satisfaction
        FROM satisfaction
    ) m
    GROUP BY period, region, staff_id
),
measures AS (
    SELECT
        p.period, p.region, p.staff_id,
        coalesce(s.name_zh, p.staff_id) AS staff_name,
        coalesce(s.role, 'unknown') AS role,
        coalesce(p.contacts, 0) AS contacts,
        coalesce(p.days, 0) AS days,
        CAST(p.contacts AS DOUBLE) / p.days AS contacts_per_day,
        p.survey_score,
        coalesce(p.complaints, 0) AS complaints,
        coalesce(p.scored, 0) AS callbacks_scored,
        p.callback_satisfaction
    FROM people p
    LEFT JOIN staff s ON s.staff_id = p.staff_id
),
result AS (
    SELECT
        period, region, staff_id, staff_name, role, contacts, days, contacts_per_day, survey_score,
        complaints, callbacks_scored, callback_satisfaction,
        CASE WHEN contacts_per_day IS NOT NULL THEN rank() OVER (
            PARTITION BY period, region, role, contacts_per_day IS NULL
            ORDER BY contacts_per_day DESC) END AS rank_contacts,
        rank() OVER (PARTITION BY period, region, role ORDER BY complaints) AS rank_complaints,
        CASE WHEN callback_satisfaction IS NOT NULL THEN rank() OVER (
            PARTITION BY period, region, role, callback_satisfaction IS NULL
            ORDER BY callback_satisfaction DESC) END AS rank_satisfaction,
        count(*) OVER (PARTITION BY period, region, role) AS peers
    FROM measures
)
SELECT result.*,
       coalesce(nullif(n_region.name_zh, ''), result.region) AS region_name
FROM result
LEFT JOIN org_units n_region ON n_region.unit_id = result.region
ORDER BY result.period, result.region, result.role, result.staff_id
