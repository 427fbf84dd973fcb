//! Enumerated vocabularies of the canonical tables.
//!
//! Every enum column stores the English `code` (snake_case) of one of these values; the
//! Chinese `zh` label is what office exports usually contain, and parsing accepts either.

use std::fmt;
use std::str::FromStr;

/// One value of a vocabulary: stored code, Chinese label, meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub code: &'static str,
    pub zh: &'static str,
    pub doc: &'static str,
}

/// A named, closed set of values (the allowed contents of an enum column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocabulary {
    pub name: &'static str,
    pub doc: &'static str,
    pub terms: &'static [Term],
}

impl Vocabulary {
    /// Finds the term whose code or Chinese label equals `value` (surrounding blanks ignored,
    /// codes case-insensitively).
    pub fn lookup(&self, value: &str) -> Option<&'static Term> {
        let value = trim(value);
        self.terms.iter().find(|t| {
            let same_start = |s: &str| {
                s.len() == value.len()
                    && s.as_bytes().first().map(u8::to_ascii_lowercase)
                        == value.as_bytes().first().map(u8::to_ascii_lowercase)
            };
            (same_start(t.code) && t.code.eq_ignore_ascii_case(value))
                || (same_start(t.zh) && t.zh == value)
        })
    }

    pub fn codes(&self) -> impl Iterator<Item = &'static str> {
        self.terms.iter().map(|t| t.code)
    }
}

/// A value that is not in its vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTerm {
    pub vocabulary: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a valid {} value",
            self.value, self.vocabulary
        )
    }
}

impl std::error::Error for UnknownTerm {}

/// Declares a vocabulary as a Rust enum plus its [`Vocabulary`] descriptor, so that the
/// generator and ingest use typed values while schemas and docs read the descriptor.
macro_rules! vocabulary {
    ($(#[doc = $doc:literal])* $name:ident = $vname:literal {
        $($(#[doc = $tdoc:literal])* $variant:ident => ($code:literal, $zh:literal)),+ $(,)?
    }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[doc = $tdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const VOCABULARY: Vocabulary = Vocabulary {
                name: $vname,
                doc: concat!($($doc),*),
                terms: &[$(Term { code: $code, zh: $zh, doc: concat!("", $($tdoc),*) }),+],
            };

            /// The stored code.
            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The Chinese label used by office exports.
            pub const fn zh(self) -> &'static str {
                match self { $($name::$variant => $zh),+ }
            }

            pub fn term(self) -> &'static Term {
                &Self::VOCABULARY.terms[self as usize]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = UnknownTerm;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let term = Self::VOCABULARY.lookup(s).ok_or_else(|| UnknownTerm {
                    vocabulary: $vname,
                    value: s.to_string(),
                })?;
                Ok(Self::ALL[Self::VOCABULARY
                    .terms
                    .iter()
                    .position(|t| t == term)
                    .expect("term comes from this vocabulary")])
            }
        }
    };
}

vocabulary! {
    /// Whether the customer or the centre placed the call.
    Direction = "direction" {
        /// The customer called the centre.
        Inbound => ("inbound", "呼入"),
        /// The centre called the customer.
        Outbound => ("outbound", "呼出"),
    }
}

vocabulary! {
    /// How a call reached or left the contact centre.
    CallChannel = "call_channel" {
        /// A customer dialled the service hotline (e.g. 10000, 95533, 95598).
        Hotline => ("hotline", "热线"),
        /// A call handled entirely by the interactive voice response system.
        Ivr => ("ivr", "自助语音"),
        /// An agent returning a call the customer requested while queued.
        Callback => ("callback", "回呼"),
        /// An outbound marketing or notification campaign call.
        OutboundCampaign => ("outbound_campaign", "外呼"),
    }
}

vocabulary! {
    /// How a call ended.
    CallOutcome = "call_outcome" {
        /// An agent answered and served the call.
        Answered => ("answered", "已接听"),
        /// The caller hung up while queued, before an agent answered.
        Abandoned => ("abandoned", "放弃"),
        /// The caller was served by the IVR and never queued for an agent.
        IvrSelfService => ("ivr_self_service", "自助服务"),
        /// Answered, then transferred to another queue or department.
        Transferred => ("transferred", "转接"),
        /// The caller left the queue asking to be called back.
        CallbackRequested => ("callback_requested", "预约回呼"),
        /// Outbound only: the customer did not pick up (not an abandon; never offered to an agent).
        NoAnswer => ("no_answer", "未接通"),
    }
}

vocabulary! {
    /// Customer value tier (telecom: 钻/金/银/基础; banks: 钻石 ≥5M RMB, 黄金 ≥1M, 白银 ≥0.5M).
    CustomerTier = "customer_tier" {
        /// Highest tier (bank: assets ≥ 5M RMB).
        Diamond => ("diamond", "钻石"),
        /// Bank: assets ≥ 1M RMB.
        Gold => ("gold", "黄金"),
        /// Bank: assets ≥ 0.5M RMB.
        Silver => ("silver", "白银"),
        /// Everyone else.
        Basic => ("basic", "普通"),
    }
}

vocabulary! {
    /// Where a ticket was received.
    TicketChannel = "ticket_channel" {
        /// Through the service hotline.
        Hotline => ("hotline", "热线"),
        /// At a branch counter.
        Counter => ("counter", "柜台"),
        /// Through the web site.
        Web => ("web", "网站"),
        /// Through the mobile app.
        App => ("app", "手机APP"),
        /// Through the WeChat service account.
        Wechat => ("wechat", "微信"),
        /// By letter.
        Letter => ("letter", "信函"),
        /// By e-mail.
        Email => ("email", "电子邮件"),
        /// In person without an appointment.
        WalkIn => ("walk_in", "上门"),
        /// Forwarded by a regulator (e.g. MIIT, CBIRC, 12315).
        RegulatorTransfer => ("regulator_transfer", "监管转办"),
        /// Any other way in, including tickets staff or systems create themselves.
        Other => ("other", "其他"),
    }
}

vocabulary! {
    /// What a ticket is.
    TicketKind = "ticket_kind" {
        /// A complaint.
        Complaint => ("complaint", "投诉"),
        /// A work order: install, move, remove, repair (装拆移修).
        WorkOrder => ("work_order", "工单"),
        /// A question.
        Inquiry => ("inquiry", "咨询"),
        /// A suggestion.
        Suggestion => ("suggestion", "建议"),
        /// Praise of a person or service.
        Praise => ("praise", "表扬"),
    }
}

vocabulary! {
    /// How serious a ticket is.
    Severity = "severity" {
        /// Ordinary.
        Normal => ("normal", "一般"),
        /// Serious.
        Serious => ("serious", "严重"),
        /// Major: reported upwards immediately.
        Major => ("major", "重大"),
    }
}

vocabulary! {
    /// Where a complaint stands in an escalation chain.
    Level = "level" {
        /// First time the customer raises the matter.
        First => ("first", "首次"),
        /// The same customer raises the same matter again.
        Repeat => ("repeat", "重复"),
        /// The customer went over the branch's head (to headquarters).
        OverLevel => ("over_level", "越级"),
        /// An appeal against a previous handling.
        Appeal => ("appeal", "申诉"),
    }
}

vocabulary! {
    /// Who passed the ticket to the handling unit.
    TicketSource = "ticket_source" {
        /// Received and handled by the unit itself.
        SelfReceived => ("self_received", "自收自办"),
        /// Transferred from headquarters.
        HqTransferred => ("hq_transferred", "总公司转办"),
        /// Transferred from a regulator.
        RegulatorTransferred => ("regulator_transferred", "监管转办"),
    }
}

vocabulary! {
    /// Ticket workflow status, in workflow order.
    TicketStatus = "ticket_status" {
        /// Received, not yet dispatched.
        Received => ("received", "受理"),
        /// Dispatched to the responsible department.
        Dispatched => ("dispatched", "派单"),
        /// Being worked on.
        InProgress => ("in_progress", "跟进"),
        /// Resolved and answered to the customer; callback pending.
        Replied => ("replied", "回复"),
        /// Callback done, not yet closed.
        CallbackDone => ("callback_done", "回访"),
        /// Closed.
        Closed => ("closed", "关闭"),
        /// Not accepted (out of scope, malicious).
        Rejected => ("rejected", "不予受理"),
        /// Withdrawn by the customer.
        Withdrawn => ("withdrawn", "撤诉"),
    }
}

impl TicketStatus {
    /// How far along the workflow a ticket in this status is: later states rank higher;
    /// the three final states (closed, rejected, withdrawn) rank equal and highest.
    pub const fn workflow_rank(self) -> u8 {
        match self {
            TicketStatus::Received => 0,
            TicketStatus::Dispatched => 1,
            TicketStatus::InProgress => 2,
            TicketStatus::Replied => 3,
            TicketStatus::CallbackDone => 4,
            TicketStatus::Closed | TicketStatus::Rejected | TicketStatus::Withdrawn => 5,
        }
    }
}

vocabulary! {
    /// Outcome of a mediation, for complaints that needed one.
    MediationResult = "mediation_result" {
        /// The parties agreed.
        Succeeded => ("succeeded", "调解成功"),
        /// No agreement.
        Failed => ("failed", "调解失败"),
    }
}

vocabulary! {
    /// How a callback (回访) was made.
    CallbackMethod = "callback_method" {
        /// Automated voice survey.
        AutoVoice => ("auto_voice", "自动语音"),
        /// SMS survey.
        Sms => ("sms", "短信"),
        /// An agent called.
        Manual => ("manual", "人工"),
    }
}

vocabulary! {
    /// Whether a callback reached the customer.
    CallbackStatus = "callback_status" {
        /// The customer answered (for SMS: replied).
        Reached => ("reached", "已接通"),
        /// No answer.
        NoAnswer => ("no_answer", "未接通"),
    }
}

vocabulary! {
    /// Satisfaction given in a callback.
    Satisfaction = "satisfaction" {
        /// Very satisfied.
        VerySatisfied => ("very_satisfied", "非常满意"),
        /// Satisfied.
        Satisfied => ("satisfied", "满意"),
        /// Dissatisfied: a reason is required and a manual follow-up is due.
        Dissatisfied => ("dissatisfied", "不满意"),
    }
}

vocabulary! {
    /// Special needs served at a branch (适老化/无障碍 services).
    SpecialNeeds = "special_needs" {
        /// No special need.
        None => ("none", "无"),
        /// Walking impairment.
        Mobility => ("mobility", "行走障碍"),
        /// Visual impairment.
        Visual => ("visual", "视觉障碍"),
        /// Hearing impairment.
        Hearing => ("hearing", "听觉障碍"),
        /// Elderly customer.
        Elderly => ("elderly", "老年"),
        /// Ill or frail.
        Frail => ("frail", "病弱"),
        /// Pregnant.
        Pregnant => ("pregnant", "孕期"),
        /// Accompanied by an infant.
        WithInfant => ("with_infant", "携带婴幼儿"),
        /// Foreign national.
        Foreign => ("foreign", "外籍"),
    }
}

vocabulary! {
    /// How a branch visit ended.
    VisitOutcome = "visit_outcome" {
        /// Called and served at a window.
        Served => ("served", "已办理"),
        /// Left before being called.
        Balked => ("balked", "未叫号离开"),
        /// Called but not present.
        NoShow => ("no_show", "过号"),
    }
}

vocabulary! {
    /// Customer segment.
    Segment = "segment" {
        /// A household (family) account.
        Household => ("household", "家庭"),
        /// An individual.
        Individual => ("individual", "个人"),
        /// A government or enterprise account.
        GovEnterprise => ("gov_enterprise", "政企"),
    }
}

vocabulary! {
    /// Why a customer left (the four churn types).
    CloseReason = "close_reason" {
        /// Moved away, deceased, no longer needed.
        Natural => ("natural", "自然"),
        /// Won by a competitor (incl. number porting 携号转网).
        Competitive => ("competitive", "竞争"),
        /// Arrears or fraud.
        Malicious => ("malicious", "恶意"),
        /// Left because of our service failures.
        ServiceFailure => ("service_failure", "过失"),
    }
}

vocabulary! {
    /// A unit's place in the organisation's hierarchy (总部 → 省 → 地市 → 网点).
    OrgLevel = "org_level" {
        /// The head office.
        Headquarters => ("headquarters", "总部"),
        /// A province or region (省/一级分行); kefu's `region` codes name these.
        Region => ("region", "省分公司"),
        /// A city (地市/二级分行).
        City => ("city", "地市分公司"),
        /// A branch or service hall (网点/营业厅/支行); `branch_id` names these.
        Branch => ("branch", "网点"),
        /// A contact centre serving a region's hotline.
        CallCentre => ("call_centre", "呼叫中心"),
    }
}

vocabulary! {
    /// What a staff member does.
    StaffRole = "staff_role" {
        /// A hotline agent (坐席).
        Agent => ("agent", "坐席"),
        /// A counter or window employee of a branch (柜员).
        Counter => ("counter", "柜员"),
        /// A ticket handler in a responsible department (工单处理人).
        Handler => ("handler", "处理人"),
        /// A field engineer (装维人员).
        Field => ("field", "装维人员"),
        /// A manager.
        Manager => ("manager", "经理"),
    }
}

/// Every vocabulary, for documentation and lookups by name.
pub const ALL_VOCABULARIES: &[Vocabulary] = &[
    Direction::VOCABULARY,
    CallChannel::VOCABULARY,
    CallOutcome::VOCABULARY,
    CustomerTier::VOCABULARY,
    TicketChannel::VOCABULARY,
    TicketKind::VOCABULARY,
    Severity::VOCABULARY,
    Level::VOCABULARY,
    TicketSource::VOCABULARY,
    TicketStatus::VOCABULARY,
    MediationResult::VOCABULARY,
    CallbackMethod::VOCABULARY,
    CallbackStatus::VOCABULARY,
    Satisfaction::VOCABULARY,
    SpecialNeeds::VOCABULARY,
    VisitOutcome::VOCABULARY,
    Segment::VOCABULARY,
    CloseReason::VOCABULARY,
    OrgLevel::VOCABULARY,
    StaffRole::VOCABULARY,
];

/// `str::trim`, with a fast exit for the usual field that has nothing to trim (the
/// Unicode-aware trim is measurable when called for every field of millions of records).
#[inline]
pub fn trim(s: &str) -> &str {
    let clean = |b: Option<&u8>| b.is_none_or(|&b| b < 0x80 && !b.is_ascii_whitespace());
    if clean(s.as_bytes().first()) && clean(s.as_bytes().last()) {
        s
    } else {
        s.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_chinese_labels() {
        assert_eq!(
            "abandoned".parse::<CallOutcome>(),
            Ok(CallOutcome::Abandoned)
        );
        assert_eq!("放弃".parse::<CallOutcome>(), Ok(CallOutcome::Abandoned));
        assert_eq!(" Gold ".parse::<CustomerTier>(), Ok(CustomerTier::Gold));
        let err = "HANG".parse::<CallOutcome>().unwrap_err();
        assert_eq!(err.to_string(), "'HANG' is not a valid call_outcome value");
    }

    #[test]
    fn descriptor_matches_enum_order() {
        for v in TicketStatus::ALL {
            assert_eq!(v.term().code, v.code());
            assert_eq!(v.term().zh, v.zh());
        }
    }

    #[test]
    fn codes_and_labels_are_unique_within_each_vocabulary() {
        for vocab in ALL_VOCABULARIES {
            for (i, a) in vocab.terms.iter().enumerate() {
                assert!(!a.doc.is_empty(), "{}.{} lacks a doc", vocab.name, a.code);
                for b in &vocab.terms[i + 1..] {
                    assert_ne!(a.code, b.code, "{}", vocab.name);
                    assert_ne!(a.zh, b.zh, "{}", vocab.name);
                }
            }
        }
    }
}
