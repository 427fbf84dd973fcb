//! The canonical tables and their columns: names, Arrow types, nullability, units, Chinese
//! labels (the headers office exports use) and what each field means.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::vocab::*;

/// Time zone of every stored timestamp. Offices export local time; ingest converts.
pub const STORAGE_TIME_ZONE: &str = "UTC";
/// The local time zone most offices export in, and the default for reports' calendar days.
pub const DEFAULT_SOURCE_TIME_ZONE: &str = "Asia/Shanghai";

/// The logical kind of a column, which fixes its Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// An identifier (text).
    Id,
    /// Free or open-ended text (categories, queues, remarks).
    Text,
    /// A value of a closed vocabulary, stored as its code.
    Enum(Vocabulary),
    /// An instant, microsecond precision, time zone UTC.
    Timestamp,
    /// A duration in whole seconds.
    Seconds,
    /// A small count or score.
    Int,
    /// True or false.
    Bool,
    /// An amount of money in RMB with two decimals.
    Money,
}

impl ColumnKind {
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnKind::Id | ColumnKind::Text | ColumnKind::Enum(_) => DataType::Utf8,
            ColumnKind::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(STORAGE_TIME_ZONE.into()))
            }
            ColumnKind::Seconds | ColumnKind::Int => DataType::Int32,
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Money => DataType::Decimal128(14, 2),
        }
    }
}

/// One column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
    pub nullable: bool,
    /// Chinese header used by office exports (and recognised by ingest).
    pub zh: &'static str,
    /// What the field means, its unit, and when it is null.
    pub doc: &'static str,
}

impl Column {
    pub fn field(&self) -> Field {
        Field::new(self.name, self.kind.data_type(), self.nullable)
    }

    /// Headers of a timestamp exported as separate date and time columns:
    /// `来电时间` → (`来电日期`, `来电时间`); `created_at` → (`created_date`, `created_time`).
    pub fn split_headers(&self, chinese: bool) -> (String, String) {
        if chinese {
            let stem = self.zh.strip_suffix("时间").unwrap_or(self.zh);
            (format!("{stem}日期"), format!("{stem}时间"))
        } else {
            let stem = self.name.strip_suffix("_at").unwrap_or(self.name);
            (format!("{stem}_date"), format!("{stem}_time"))
        }
    }

    /// The unit of the stored value, if it has one.
    pub fn unit(&self) -> Option<&'static str> {
        match self.kind {
            ColumnKind::Seconds => Some("seconds"),
            ColumnKind::Money => Some("RMB"),
            ColumnKind::Timestamp => Some("UTC instant, microseconds"),
            _ => None,
        }
    }
}

const fn col(
    name: &'static str,
    kind: ColumnKind,
    nullable: bool,
    zh: &'static str,
    doc: &'static str,
) -> Column {
    Column {
        name,
        kind,
        nullable,
        zh,
        doc,
    }
}

const ID: ColumnKind = ColumnKind::Id;
const TEXT: ColumnKind = ColumnKind::Text;
const TS: ColumnKind = ColumnKind::Timestamp;
const SECS: ColumnKind = ColumnKind::Seconds;
const INT: ColumnKind = ColumnKind::Int;
const BOOL: ColumnKind = ColumnKind::Bool;
const MONEY: ColumnKind = ColumnKind::Money;
const NULL: bool = true;
const REQ: bool = false;

const fn vocab(v: Vocabulary) -> ColumnKind {
    ColumnKind::Enum(v)
}

static CALLS: &[Column] = &[
    col(
        "call_id",
        ID,
        REQ,
        "呼叫流水号",
        "Unique id of the contact.",
    ),
    col(
        "region",
        TEXT,
        REQ,
        "地区",
        "Region (city/province unit) the call centre belongs to.",
    ),
    col(
        "branch_id",
        ID,
        REQ,
        "呼叫中心",
        "The call centre that handled the call.",
    ),
    col(
        "queue",
        TEXT,
        REQ,
        "技能组",
        "Skill group / business type the call was routed to.",
    ),
    col(
        "direction",
        vocab(Direction::VOCABULARY),
        REQ,
        "呼叫方向",
        "Inbound or outbound.",
    ),
    col(
        "channel",
        vocab(CallChannel::VOCABULARY),
        REQ,
        "来电渠道",
        "Hotline, IVR, callback or outbound campaign.",
    ),
    col(
        "customer_id",
        ID,
        NULL,
        "客户号",
        "The customer; null when the caller was not identified (exports often write 0).",
    ),
    col(
        "customer_tier",
        vocab(CustomerTier::VOCABULARY),
        NULL,
        "客户等级",
        "The customer's tier at the time of the call; null when not identified.",
    ),
    col(
        "agent_id",
        ID,
        NULL,
        "坐席工号",
        "The agent who served the call; null when never served.",
    ),
    col(
        "ivr_entered_at",
        TS,
        REQ,
        "来电时间",
        "When the call reached the platform (IVR entry); for outbound calls, when dialling started. The call's event time.",
    ),
    col(
        "queued_at",
        TS,
        NULL,
        "排队时间",
        "When the call entered an agent queue; null when never queued.",
    ),
    col(
        "answered_at",
        TS,
        NULL,
        "应答时间",
        "When an agent (or, outbound, the customer) answered; null when not answered.",
    ),
    col(
        "ended_at",
        TS,
        REQ,
        "挂机时间",
        "When the call ended (hang-up).",
    ),
    col(
        "wait_s",
        SECS,
        NULL,
        "等待时长",
        "Seconds in the agent queue (answered_at or abandon − queued_at); null when never queued.",
    ),
    col(
        "talk_s",
        SECS,
        NULL,
        "通话时长",
        "Seconds of conversation with the agent, excluding hold; null when not answered.",
    ),
    col(
        "hold_s",
        SECS,
        NULL,
        "保持时长",
        "Seconds the caller was on hold; null when not answered.",
    ),
    col(
        "wrap_s",
        SECS,
        NULL,
        "话后处理时长",
        "Seconds of after-call work by the agent; null when not answered.",
    ),
    col(
        "outcome",
        vocab(CallOutcome::VOCABULARY),
        REQ,
        "呼叫结果",
        "How the call ended.",
    ),
    col(
        "transfers",
        INT,
        REQ,
        "转接次数",
        "Number of transfers to another queue or department.",
    ),
    col(
        "category",
        TEXT,
        NULL,
        "业务类别",
        "Business category of the contact (billing, fault report, …).",
    ),
    col(
        "score",
        INT,
        NULL,
        "满意度评分",
        "Post-call survey score 1 (worst) to 5 (best); null when none given.",
    ),
];

static TICKETS: &[Column] = &[
    col("ticket_id", ID, REQ, "工单号", "Unique id of the ticket."),
    col("region", TEXT, REQ, "地区", "Region of the handling unit."),
    col(
        "branch_id",
        ID,
        REQ,
        "网点",
        "Branch / service hall responsible for the ticket.",
    ),
    col(
        "customer_id",
        ID,
        NULL,
        "客户号",
        "The customer who raised it; null when the requester is anonymous (e.g. public service requests).",
    ),
    col(
        "customer_tier",
        vocab(CustomerTier::VOCABULARY),
        NULL,
        "客户等级",
        "The customer's tier when the ticket was created.",
    ),
    col(
        "channel",
        vocab(TicketChannel::VOCABULARY),
        REQ,
        "受理渠道",
        "Where the ticket was received.",
    ),
    col(
        "kind",
        vocab(TicketKind::VOCABULARY),
        REQ,
        "工单类型",
        "Complaint, work order, inquiry, suggestion or praise.",
    ),
    col(
        "category",
        TEXT,
        REQ,
        "投诉类别",
        "Business category (complaint category for complaints).",
    ),
    col(
        "severity",
        vocab(Severity::VOCABULARY),
        REQ,
        "严重程度",
        "Normal, serious or major.",
    ),
    col(
        "level",
        vocab(Level::VOCABULARY),
        REQ,
        "投诉级别",
        "First, repeat, over-level or appeal (escalation chain position).",
    ),
    col(
        "source",
        vocab(TicketSource::VOCABULARY),
        REQ,
        "工单来源",
        "Self-received, transferred by headquarters or by a regulator.",
    ),
    col(
        "justified",
        BOOL,
        NULL,
        "是否有理",
        "Whether the complaint was found justified (有理由的); null for other kinds or while undecided.",
    ),
    col(
        "responsible_dept",
        TEXT,
        NULL,
        "责任部门",
        "Department held responsible / handling it.",
    ),
    col(
        "owner_id",
        ID,
        NULL,
        "处理人",
        "Staff member who owns the ticket.",
    ),
    col(
        "parent_ticket_id",
        ID,
        NULL,
        "关联工单号",
        "The earlier ticket this one repeats or escalates; null for first contacts.",
    ),
    col(
        "created_at",
        TS,
        REQ,
        "受理时间",
        "When the ticket was received. The ticket's event time.",
    ),
    col(
        "dispatched_at",
        TS,
        NULL,
        "派单时间",
        "When it was dispatched to the responsible department; null when handled on the spot.",
    ),
    col(
        "first_contact_at",
        TS,
        NULL,
        "首次联系时间",
        "When the handler first contacted the customer (target: within 2 hours of dispatch).",
    ),
    col(
        "due_at",
        TS,
        NULL,
        "承诺时限",
        "Promised / SLA deadline for resolution; null when no deadline was promised.",
    ),
    col(
        "resolved_at",
        TS,
        NULL,
        "办结时间",
        "When the matter was resolved and answered; null while unresolved.",
    ),
    col(
        "closed_at",
        TS,
        NULL,
        "关闭时间",
        "When the ticket was closed (after the callback); null while open.",
    ),
    col(
        "reopened_count",
        INT,
        REQ,
        "重开次数",
        "How many times the ticket was reopened.",
    ),
    col(
        "status",
        vocab(TicketStatus::VOCABULARY),
        REQ,
        "工单状态",
        "Workflow status at export time.",
    ),
    col(
        "mediation_result",
        vocab(MediationResult::VOCABULARY),
        NULL,
        "调解结果",
        "Result of mediation; null when none was needed.",
    ),
    col(
        "compensation_amount",
        MONEY,
        NULL,
        "赔偿金额",
        "Compensation paid to the customer, RMB; null when none.",
    ),
    col(
        "description",
        TEXT,
        NULL,
        "问题描述",
        "Free-text description (may contain line breaks).",
    ),
    col(
        "updated_at",
        TS,
        NULL,
        "更新时间",
        "When this version of the ticket came about: its latest workflow event (received, dispatched, first contact, resolved, closed), or the export time of event-log exports. Decides which of two exported versions is newer; null when the export has no such column (then workflow progress decides).",
    ),
    col(
        "subject_staff_id",
        ID,
        NULL,
        "被投诉人员",
        "For a complaint about a person: the staff member it is about (an agent, a counter or field employee), as the investigation named them; null when the complaint is not about a person. Not the handler (owner_id). The rule \"3 justified complaints about one person in 6 months\" counts this column.",
    ),
];

static CALLBACKS: &[Column] = &[
    col(
        "callback_id",
        ID,
        REQ,
        "回访流水号",
        "Unique id of the callback attempt.",
    ),
    col(
        "ticket_id",
        ID,
        NULL,
        "工单号",
        "The ticket followed up; null for call surveys.",
    ),
    col(
        "call_id",
        ID,
        NULL,
        "呼叫流水号",
        "The call surveyed; null for ticket callbacks.",
    ),
    col(
        "customer_id",
        ID,
        REQ,
        "客户号",
        "The customer called back.",
    ),
    col(
        "region",
        TEXT,
        REQ,
        "地区",
        "Region of the unit making the callback.",
    ),
    col(
        "method",
        vocab(CallbackMethod::VOCABULARY),
        REQ,
        "回访方式",
        "Automated voice, SMS or manual.",
    ),
    col(
        "status",
        vocab(CallbackStatus::VOCABULARY),
        REQ,
        "回访状态",
        "Reached or no answer.",
    ),
    col(
        "score",
        vocab(Satisfaction::VOCABULARY),
        NULL,
        "满意度",
        "Very satisfied, satisfied or dissatisfied; null when not reached.",
    ),
    col(
        "reason",
        TEXT,
        NULL,
        "不满意原因",
        "Why the customer was dissatisfied; present whenever score is dissatisfied.",
    ),
    col(
        "attempt",
        INT,
        REQ,
        "回访次数",
        "1 for the first callback of a ticket or call, 2+ for manual follow-ups.",
    ),
    col(
        "performed_at",
        TS,
        REQ,
        "回访时间",
        "When the callback was made. The callback's event time.",
    ),
];

static VISITS: &[Column] = &[
    col("visit_id", ID, REQ, "到访流水号", "Unique id of the visit."),
    col("region", TEXT, REQ, "地区", "Region of the branch."),
    col(
        "branch_id",
        ID,
        REQ,
        "网点",
        "Branch / service hall visited.",
    ),
    col(
        "customer_id",
        ID,
        NULL,
        "客户号",
        "The customer; null for unidentified walk-ins.",
    ),
    col(
        "customer_tier",
        vocab(CustomerTier::VOCABULARY),
        NULL,
        "客户等级",
        "The customer's tier at the visit; null for walk-ins.",
    ),
    col(
        "queue_ticket",
        TEXT,
        REQ,
        "排队号",
        "Queue number: letter = business type, number = sequence of the day (e.g. A21).",
    ),
    col(
        "business_type",
        TEXT,
        REQ,
        "业务类型",
        "Business the customer came for.",
    ),
    col(
        "special_needs",
        vocab(SpecialNeeds::VOCABULARY),
        REQ,
        "特殊需求",
        "Special-needs service given (none for most).",
    ),
    col(
        "arrived_at",
        TS,
        REQ,
        "取号时间",
        "When the customer took a queue number. The visit's event time.",
    ),
    col(
        "called_at",
        TS,
        NULL,
        "叫号时间",
        "When the number was called; null when the customer left before (balked).",
    ),
    col(
        "service_started_at",
        TS,
        NULL,
        "开始办理时间",
        "When service started at the window; null unless served.",
    ),
    col(
        "service_ended_at",
        TS,
        NULL,
        "办结时间",
        "When service ended; null unless served.",
    ),
    col(
        "window_id",
        ID,
        NULL,
        "窗口号",
        "Window that called or served the customer.",
    ),
    col(
        "staff_id",
        ID,
        NULL,
        "柜员号",
        "Staff member at that window.",
    ),
    col(
        "outcome",
        vocab(VisitOutcome::VOCABULARY),
        REQ,
        "办理结果",
        "Served, balked (left before being called) or no-show.",
    ),
    col(
        "score",
        INT,
        NULL,
        "评价",
        "Satisfaction score 1 (worst) to 5 (best) from the counter pad; null when none.",
    ),
];

static CUSTOMERS: &[Column] = &[
    col(
        "customer_id",
        ID,
        REQ,
        "客户号",
        "Unique id of the customer.",
    ),
    col(
        "region",
        TEXT,
        REQ,
        "地区",
        "Region the customer belongs to.",
    ),
    col(
        "branch_id",
        ID,
        REQ,
        "归属网点",
        "Home branch of the customer.",
    ),
    col(
        "segment",
        vocab(Segment::VOCABULARY),
        REQ,
        "客户类型",
        "Household, individual or government/enterprise.",
    ),
    col(
        "tier",
        vocab(CustomerTier::VOCABULARY),
        REQ,
        "客户等级",
        "Current tier (events carry the tier at their time).",
    ),
    col(
        "opened_at",
        TS,
        REQ,
        "开户时间",
        "When the account was opened / the number activated.",
    ),
    col(
        "closed_at",
        TS,
        NULL,
        "销户时间",
        "When the account was closed or the number ported away; null while active.",
    ),
    col(
        "close_reason",
        vocab(CloseReason::VOCABULARY),
        NULL,
        "销户原因",
        "Churn type; null while active.",
    ),
    col(
        "updated_at",
        TS,
        NULL,
        "更新时间",
        "When the customer record last changed (opened, tier change, closed), or the export time of a snapshot that has no such column per row. Decides which of two exported versions is newer; null when the export has no such column.",
    ),
];

/// The display names every dimension but customers has.
const NAME_ZH: Column = col(
    "name_zh",
    TEXT,
    REQ,
    "名称",
    "Display name in Chinese, as reports show it.",
);
const NAME_EN: Column = col(
    "name_en",
    TEXT,
    NULL,
    "英文名称",
    "Display name in English; null where there is none (reports then show the Chinese one).",
);
const DIMENSION_UPDATED_AT: Column = col(
    "updated_at",
    TS,
    NULL,
    "更新时间",
    "When the record last changed, or the export time of a snapshot; decides which of two exported versions is newer. Null when the export has no such column.",
);

static ORG_UNITS: &[Column] = &[
    col(
        "unit_id",
        ID,
        REQ,
        "机构编码",
        "Code of the unit: the codes events carry (`region`, `branch_id`, a call centre's `branch_id`), or a city's or the head office's own code.",
    ),
    col(
        "level",
        vocab(OrgLevel::VOCABULARY),
        REQ,
        "机构层级",
        "Head office, region (province), city, branch or call centre.",
    ),
    col(
        "parent_id",
        ID,
        NULL,
        "上级机构",
        "The unit this one reports to (a branch's city, a city's region, a region's head office); null for the head office. Roll-ups follow it.",
    ),
    col(
        "region",
        TEXT,
        NULL,
        "所属地区",
        "The region code the unit belongs to (its own code for a region); null for the head office.",
    ),
    NAME_ZH,
    NAME_EN,
    col(
        "opened_at",
        TS,
        REQ,
        "成立时间",
        "When the unit opened (or the start of the data, when unknown).",
    ),
    col(
        "closed_at",
        TS,
        NULL,
        "撤销时间",
        "When the unit closed or merged; null while open.",
    ),
    DIMENSION_UPDATED_AT,
];

static STAFF: &[Column] = &[
    col(
        "staff_id",
        ID,
        REQ,
        "工号",
        "Staff number, as events carry it (`agent_id`, `staff_id`, `owner_id`, `subject_staff_id`).",
    ),
    col(
        "region",
        TEXT,
        REQ,
        "地区",
        "Region the staff member works in.",
    ),
    col(
        "unit_id",
        ID,
        REQ,
        "所属机构",
        "The branch, call centre or department unit (org_units.unit_id) they belong to.",
    ),
    col(
        "role",
        vocab(StaffRole::VOCABULARY),
        REQ,
        "岗位",
        "Agent, counter employee, ticket handler, field engineer or manager.",
    ),
    NAME_ZH,
    NAME_EN,
    col(
        "hired_at",
        TS,
        REQ,
        "入职时间",
        "When they started in this post.",
    ),
    col(
        "left_at",
        TS,
        NULL,
        "离职时间",
        "When they left; null while employed. A staff member counts toward contacts per day only while employed.",
    ),
    DIMENSION_UPDATED_AT,
];

static QUEUES: &[Column] = &[
    col(
        "queue",
        ID,
        REQ,
        "技能组",
        "The queue (skill group) code calls carry.",
    ),
    NAME_ZH,
    NAME_EN,
    col(
        "service_level_s",
        SECS,
        NULL,
        "服务水平时限",
        "The queue's service-level threshold T: a call answered within T seconds of queueing counts as within the service level. Null: the query's default (20 s).",
    ),
    col(
        "service_level_target",
        INT,
        NULL,
        "服务水平目标",
        "The share of offered calls the queue must answer within T, in percent (e.g. 80); null when none is set.",
    ),
    col(
        "valid_from",
        TS,
        REQ,
        "生效时间",
        "When these settings took effect.",
    ),
    DIMENSION_UPDATED_AT,
];

static CATEGORIES: &[Column] = &[
    col(
        "category",
        ID,
        REQ,
        "类别编码",
        "The category code tickets and calls carry.",
    ),
    col(
        "kind",
        vocab(TicketKind::VOCABULARY),
        NULL,
        "工单类型",
        "The ticket kind the category belongs to (complaint categories are the ones regulators count); null when it serves several.",
    ),
    NAME_ZH,
    NAME_EN,
    col(
        "product_line",
        TEXT,
        NULL,
        "产品线",
        "The product line the category belongs to (broadband, mobile, fixed line …), for the breakdown the rules ask of an entity over its complaint limit.",
    ),
    col(
        "valid_from",
        TS,
        REQ,
        "生效时间",
        "When the category came into use.",
    ),
    DIMENSION_UPDATED_AT,
];

/// One part of a table's version order, most significant first: how kefu decides which of
/// two exported versions of the same record (same key) is the newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionPart {
    /// A later value of this column is newer; null is oldest.
    Latest(&'static str),
    /// A non-null value of this column is newer than null (a survey score that arrived
    /// later, a closing date).
    Present(&'static str),
    /// Workflow progress of a ticket's `status`: received < dispatched < in progress <
    /// replied < callback done < closed, rejected, withdrawn.
    Workflow(&'static str),
}

/// The canonical tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Calls,
    Tickets,
    Callbacks,
    Visits,
    Customers,
    OrgUnits,
    Staff,
    Queues,
    Categories,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Calls,
        Table::Tickets,
        Table::Callbacks,
        Table::Visits,
        Table::Customers,
        Table::OrgUnits,
        Table::Staff,
        Table::Queues,
        Table::Categories,
    ];

    /// Whether the table is a dimension (what events refer to: customers, the
    /// organisation, queues, categories) rather than a log of events: not partitioned by
    /// month, and its rows change in place.
    pub const fn is_dimension(self) -> bool {
        !matches!(
            self,
            Table::Calls | Table::Tickets | Table::Callbacks | Table::Visits
        )
    }

    pub const fn name(self) -> &'static str {
        match self {
            Table::Calls => "calls",
            Table::Tickets => "tickets",
            Table::Callbacks => "callbacks",
            Table::Visits => "visits",
            Table::Customers => "customers",
            Table::OrgUnits => "org_units",
            Table::Staff => "staff",
            Table::Queues => "queues",
            Table::Categories => "categories",
        }
    }

    /// Chinese name used in export file names and reports.
    pub const fn zh(self) -> &'static str {
        match self {
            Table::Calls => "话务记录",
            Table::Tickets => "工单",
            Table::Callbacks => "回访记录",
            Table::Visits => "网点到访",
            Table::Customers => "客户",
            Table::OrgUnits => "组织机构",
            Table::Staff => "员工",
            Table::Queues => "技能组",
            Table::Categories => "业务类别",
        }
    }

    pub const fn doc(self) -> &'static str {
        match self {
            Table::Calls => "One row per contact with a hotline or IVR, inbound or outbound.",
            Table::Tickets => {
                "Complaints, work orders, inquiries, suggestions and praise, with their workflow times."
            }
            Table::Callbacks => {
                "Follow-up calls and satisfaction surveys after a ticket or a call; one row per attempt."
            }
            Table::Visits => "Branch / service-hall visits with a queue number.",
            Table::Customers => "The customer dimension, with account opening and closing (churn).",
            Table::OrgUnits => {
                "The organisation: head office, regions, cities, branches and call centres, with display names and the hierarchy reports roll up along."
            }
            Table::Staff => {
                "Staff members (agents, counter employees, handlers), with names and the unit they belong to."
            }
            Table::Queues => {
                "Hotline queues (skill groups): display names and each queue's service-level threshold and target."
            }
            Table::Categories => {
                "Ticket and call categories: display names, kind and product line."
            }
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Calls => CALLS,
            Table::Tickets => TICKETS,
            Table::Callbacks => CALLBACKS,
            Table::Visits => VISITS,
            Table::Customers => CUSTOMERS,
            Table::OrgUnits => ORG_UNITS,
            Table::Staff => STAFF,
            Table::Queues => QUEUES,
            Table::Categories => CATEGORIES,
        }
    }

    pub fn column(self, name: &str) -> Option<&'static Column> {
        self.columns().iter().find(|c| c.name == name)
    }

    /// The unique key of a row.
    pub fn id_column(self) -> &'static str {
        self.columns()[0].name
    }

    /// The record's key: a record exported again (re-sent, or in a later state) has the
    /// same key, and the warehouse holds one row per key, its newest version.
    pub fn key_column(self) -> &'static str {
        self.id_column()
    }

    /// How two versions of one record are ordered, most significant part first. Ties
    /// that differ in content go to the later batch (or the later row within a batch);
    /// identical versions are duplicates.
    pub fn version_rule(self) -> &'static [VersionPart] {
        use VersionPart::*;
        match self {
            // A call is exported once it ended; a later export may add the survey score.
            Table::Calls => &[Latest("ended_at"), Present("score")],
            // Tickets change state: the export time when the export has it, else workflow
            // progress (a reopened ticket has gone further than one never reopened).
            Table::Tickets => &[
                Latest("updated_at"),
                Latest("reopened_count"),
                Workflow("status"),
                Latest("closed_at"),
                Latest("resolved_at"),
                Latest("first_contact_at"),
                Latest("dispatched_at"),
            ],
            Table::Callbacks => &[Latest("performed_at"), Present("score")],
            // A visit is exported at the end of the branch's day; a later export may
            // complete it.
            Table::Visits => &[
                Latest("service_ended_at"),
                Latest("service_started_at"),
                Latest("called_at"),
            ],
            // Customers change tier and close: the change time when the export has it.
            Table::Customers => &[Latest("updated_at"), Present("closed_at")],
            Table::OrgUnits => &[Latest("updated_at"), Present("closed_at")],
            Table::Staff => &[Latest("updated_at"), Present("left_at")],
            Table::Queues | Table::Categories => &[Latest("updated_at"), Latest("valid_from")],
        }
    }

    /// The column that places a row in time (partitioning and ordering use it).
    pub fn event_time_column(self) -> &'static str {
        match self {
            Table::Calls => "ivr_entered_at",
            Table::Tickets => "created_at",
            Table::Callbacks => "performed_at",
            Table::Visits => "arrived_at",
            Table::Customers | Table::OrgUnits => "opened_at",
            Table::Staff => "hired_at",
            Table::Queues | Table::Categories => "valid_from",
        }
    }

    /// The Arrow schema (shared; cheap to clone).
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<Vec<SchemaRef>> = LazyLock::new(|| {
            Table::ALL
                .iter()
                .map(|t| {
                    let fields: Vec<Field> = t.columns().iter().map(Column::field).collect();
                    Arc::new(Schema::new(fields))
                })
                .collect()
        });
        SCHEMAS[self as usize].clone()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A table name that is not canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTable(pub String);

impl fmt::Display for UnknownTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown table '{}' (expected one of calls, tickets, callbacks, visits, customers)",
            self.0
        )
    }
}

impl std::error::Error for UnknownTable {}

impl FromStr for Table {
    type Err = UnknownTable;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()) || t.zh() == s.trim())
            .ok_or_else(|| UnknownTable(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column names of domain.md, which users' SQL relies on, must all be present.
    #[test]
    fn canonical_columns_are_present() {
        let expected: [(Table, &str); 5] = [
            (
                Table::Calls,
                "call_id region branch_id queue direction channel customer_id customer_tier agent_id ivr_entered_at queued_at answered_at ended_at wait_s talk_s hold_s wrap_s outcome transfers category score",
            ),
            (
                Table::Tickets,
                "ticket_id region branch_id customer_id customer_tier channel kind category severity level source justified responsible_dept owner_id created_at first_contact_at due_at resolved_at closed_at reopened_count status compensation_amount",
            ),
            (
                Table::Callbacks,
                "callback_id ticket_id call_id customer_id region method status score reason performed_at",
            ),
            (
                Table::Visits,
                "visit_id region branch_id customer_id customer_tier queue_ticket business_type special_needs arrived_at called_at service_started_at service_ended_at window_id staff_id outcome score",
            ),
            (
                Table::Customers,
                "customer_id region branch_id segment tier opened_at closed_at close_reason",
            ),
        ];
        for (table, names) in expected {
            for name in names.split_whitespace() {
                assert!(table.column(name).is_some(), "{table}.{name} missing");
            }
        }
    }

    #[test]
    fn columns_are_documented_and_unique() {
        for table in Table::ALL {
            let cols = table.columns();
            for (i, c) in cols.iter().enumerate() {
                assert!(!c.doc.is_empty() && !c.zh.is_empty(), "{table}.{}", c.name);
                assert!(cols[i + 1..].iter().all(|d| d.name != c.name));
            }
            assert_eq!(table.schema().fields().len(), cols.len());
            let time = table.column(table.event_time_column()).unwrap();
            assert_eq!(time.kind, ColumnKind::Timestamp);
            assert!(!time.nullable);
            let key = table.column(table.key_column()).unwrap();
            assert!(!key.nullable, "{table}: the key is required");
            for part in table.version_rule() {
                let (VersionPart::Latest(c) | VersionPart::Present(c) | VersionPart::Workflow(c)) =
                    *part;
                assert!(table.column(c).is_some(), "{table}: version column {c}");
            }
        }
    }

    #[test]
    fn timestamps_are_utc_microseconds() {
        let schema = Table::Calls.schema();
        assert_eq!(
            schema.field_with_name("answered_at").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn split_timestamp_headers() {
        let c = Table::Calls.column("ivr_entered_at").unwrap();
        assert_eq!(
            c.split_headers(true),
            ("来电日期".into(), "来电时间".into())
        );
        assert_eq!(
            c.split_headers(false),
            ("ivr_entered_date".into(), "ivr_entered_time".into())
        );
        let due = Table::Tickets.column("due_at").unwrap();
        assert_eq!(
            due.split_headers(true),
            ("承诺时限日期".into(), "承诺时限时间".into())
        );
    }

    #[test]
    fn table_names_parse() {
        assert_eq!("Tickets".parse::<Table>(), Ok(Table::Tickets));
        assert_eq!("工单".parse::<Table>(), Ok(Table::Tickets));
        assert!("orders".parse::<Table>().is_err());
    }
}
