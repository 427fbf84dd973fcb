//! Generated rows in compact form, and how each writes its columns, in the canonical order of
//! `kefu_model`, through a format-agnostic [`FieldWriter`].

use kefu_model::Term;
use kefu_model::vocab::*;

use crate::world::{Customer, World};
use kefu_model::Table;

/// A formatted identifier: prefix and zero-padded sequence number (e.g. `CL000000001234`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id {
    pub prefix: &'static str,
    pub n: u64,
    pub width: usize,
}

impl Id {
    pub const fn call(n: u64) -> Self {
        Id {
            prefix: "CL",
            n,
            width: 12,
        }
    }
    pub const fn ticket(n: u64) -> Self {
        Id {
            prefix: "TK",
            n,
            width: 10,
        }
    }
    pub const fn callback(n: u64) -> Self {
        Id {
            prefix: "CB",
            n,
            width: 11,
        }
    }
    pub const fn visit(n: u64) -> Self {
        Id {
            prefix: "VS",
            n,
            width: 11,
        }
    }
    pub const fn customer(index: u32) -> Self {
        Id {
            prefix: "CU",
            n: index as u64 + 1,
            width: 9,
        }
    }

    /// Writes the id into `buf` and returns the written bytes.
    pub fn format<'a>(&self, buf: &'a mut [u8; 32]) -> &'a [u8] {
        let p = self.prefix.len();
        buf[..p].copy_from_slice(self.prefix.as_bytes());
        let mut num = itoa::Buffer::new();
        let digits = num.format(self.n).as_bytes();
        let pad = self.width.saturating_sub(digits.len());
        buf[p..p + pad].fill(b'0');
        buf[p + pad..p + pad + digits.len()].copy_from_slice(digits);
        &buf[..p + pad + digits.len()]
    }
}

/// Receives one row's fields in column order; each output format implements it once.
pub trait FieldWriter {
    fn id(&mut self, v: Option<Id>);
    fn text(&mut self, v: Option<&str>);
    fn term(&mut self, v: Option<&'static Term>);
    /// UTC epoch seconds.
    fn timestamp(&mut self, v: Option<i64>);
    fn seconds(&mut self, v: Option<i32>);
    fn int(&mut self, v: i64);
    fn opt_int(&mut self, v: Option<i64>);
    fn boolean(&mut self, v: Option<bool>);
    /// Money in fen (1/100 RMB).
    fn money(&mut self, cents: Option<i64>);
    fn end_row(&mut self);
}

#[derive(Debug, Clone)]
pub struct CallRec {
    pub id: u64,
    pub region: u16,
    pub queue: &'static str,
    pub direction: Direction,
    pub channel: CallChannel,
    pub customer: Option<u32>,
    pub tier: Option<CustomerTier>,
    pub agent: Option<u32>,
    pub ivr_entered_at: i64,
    pub queued_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    pub wait_s: Option<i32>,
    pub talk_s: Option<i32>,
    pub hold_s: Option<i32>,
    pub wrap_s: Option<i32>,
    pub outcome: CallOutcome,
    pub transfers: u8,
    pub category: &'static str,
    pub score: Option<u8>,
}

#[derive(Debug, Clone)]
pub struct TicketRec {
    pub id: u64,
    pub region: u16,
    pub branch: u16,
    pub customer: u32,
    pub tier: CustomerTier,
    pub channel: TicketChannel,
    pub kind: TicketKind,
    pub category: &'static str,
    pub severity: Severity,
    pub level: Level,
    pub source: TicketSource,
    pub justified: Option<bool>,
    pub responsible_dept: &'static str,
    pub owner: u32,
    pub parent: Option<u64>,
    pub created_at: i64,
    pub dispatched_at: Option<i64>,
    pub first_contact_at: Option<i64>,
    pub due_at: i64,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub reopened_count: u8,
    pub status: TicketStatus,
    pub mediation: Option<MediationResult>,
    pub compensation_fen: Option<i64>,
    pub description: &'static str,
    /// A handler's follow-up note appended on a second line.
    pub note: Option<&'static str>,
    /// The latest workflow event of the state this record shows (set when the lifecycle
    /// is observed at a cut; see `sim::observe`).
    pub updated_at: i64,
    /// The staff member a complaint is about, if it is about a person.
    pub subject: Option<Subject>,
}

/// The person a complaint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A hotline agent of the ticket's region (1-based).
    Agent(u32),
    /// The staff member at a window of the ticket's branch (1-based).
    Counter(u8),
}

#[derive(Debug, Clone)]
pub struct CallbackRec {
    pub id: u64,
    pub ticket: Option<u64>,
    pub call: Option<u64>,
    pub customer: u32,
    pub region: u16,
    pub method: CallbackMethod,
    pub status: CallbackStatus,
    pub score: Option<Satisfaction>,
    pub reason: Option<&'static str>,
    pub attempt: u8,
    pub performed_at: i64,
}

#[derive(Debug, Clone)]
pub struct VisitRec {
    pub id: u64,
    pub region: u16,
    pub branch: u16,
    pub customer: Option<u32>,
    pub tier: Option<CustomerTier>,
    pub letter: u8,
    pub number: u16,
    pub business_type: &'static str,
    pub special_needs: SpecialNeeds,
    pub arrived_at: i64,
    pub called_at: Option<i64>,
    pub service_started_at: Option<i64>,
    pub service_ended_at: Option<i64>,
    pub window: Option<u8>,
    pub outcome: VisitOutcome,
    pub score: Option<u8>,
}

impl CallRec {
    pub fn write(&self, w: &World, f: &mut impl FieldWriter) {
        let region = &w.regions[self.region as usize];
        f.id(Some(Id::call(self.id)));
        f.text(Some(&region.code));
        f.text(Some(&region.call_centre));
        f.text(Some(self.queue));
        f.term(Some(self.direction.term()));
        f.term(Some(self.channel.term()));
        f.id(self.customer.map(Id::customer));
        f.term(self.tier.map(CustomerTier::term));
        f.text(self.agent.map(|a| region.agent_id(a)));
        f.timestamp(Some(self.ivr_entered_at));
        f.timestamp(self.queued_at);
        f.timestamp(self.answered_at);
        f.timestamp(Some(self.ended_at));
        f.seconds(self.wait_s);
        f.seconds(self.talk_s);
        f.seconds(self.hold_s);
        f.seconds(self.wrap_s);
        f.term(Some(self.outcome.term()));
        f.int(self.transfers.into());
        f.text(Some(self.category));
        f.opt_int(self.score.map(i64::from));
        f.end_row();
    }
}

impl TicketRec {
    pub fn write(&self, w: &World, f: &mut impl FieldWriter) {
        let region = &w.regions[self.region as usize];
        f.id(Some(Id::ticket(self.id)));
        f.text(Some(&region.code));
        f.text(Some(&region.branches[self.branch as usize].id));
        f.id(Some(Id::customer(self.customer)));
        f.term(Some(self.tier.term()));
        f.term(Some(self.channel.term()));
        f.term(Some(self.kind.term()));
        f.text(Some(self.category));
        f.term(Some(self.severity.term()));
        f.term(Some(self.level.term()));
        f.term(Some(self.source.term()));
        f.boolean(self.justified);
        f.text(Some(self.responsible_dept));
        f.text(Some(region.owner_id(self.owner)));
        f.id(self.parent.map(Id::ticket));
        f.timestamp(Some(self.created_at));
        f.timestamp(self.dispatched_at);
        f.timestamp(self.first_contact_at);
        f.timestamp(Some(self.due_at));
        f.timestamp(self.resolved_at);
        f.timestamp(self.closed_at);
        f.int(self.reopened_count.into());
        f.term(Some(self.status.term()));
        f.term(self.mediation.map(MediationResult::term));
        f.money(self.compensation_fen);
        match self.note {
            Some(note) => f.text(Some(&format!("{}\n{note}", self.description))),
            None => f.text(Some(self.description)),
        }
        f.timestamp(Some(self.updated_at));
        f.text(self.subject.map(|s| match s {
            Subject::Agent(n) => region.agent_id(n),
            Subject::Counter(w) => &region.branches[self.branch as usize].staff_ids[w as usize - 1],
        }));
        f.end_row();
    }
}

impl CallbackRec {
    pub fn write(&self, w: &World, f: &mut impl FieldWriter) {
        f.id(Some(Id::callback(self.id)));
        f.id(self.ticket.map(Id::ticket));
        f.id(self.call.map(Id::call));
        f.id(Some(Id::customer(self.customer)));
        f.text(Some(&w.regions[self.region as usize].code));
        f.term(Some(self.method.term()));
        f.term(Some(self.status.term()));
        f.term(self.score.map(Satisfaction::term));
        f.text(self.reason);
        f.int(self.attempt.into());
        f.timestamp(Some(self.performed_at));
        f.end_row();
    }
}

impl VisitRec {
    pub fn write(&self, w: &World, f: &mut impl FieldWriter) {
        let region = &w.regions[self.region as usize];
        let branch = &region.branches[self.branch as usize];
        f.id(Some(Id::visit(self.id)));
        f.text(Some(&region.code));
        f.text(Some(&branch.id));
        f.id(self.customer.map(Id::customer));
        f.term(self.tier.map(CustomerTier::term));
        let mut ticket = [0u8; 8];
        ticket[0] = self.letter;
        let mut num = itoa::Buffer::new();
        let digits = num.format(self.number).as_bytes();
        let pad = 2usize.saturating_sub(digits.len());
        ticket[1..1 + pad].fill(b'0');
        ticket[1 + pad..1 + pad + digits.len()].copy_from_slice(digits);
        let ticket = std::str::from_utf8(&ticket[..1 + pad + digits.len()]).expect("ascii");
        f.text(Some(ticket));
        f.text(Some(self.business_type));
        f.term(Some(self.special_needs.term()));
        f.timestamp(Some(self.arrived_at));
        f.timestamp(self.called_at);
        f.timestamp(self.service_started_at);
        f.timestamp(self.service_ended_at);
        let window = self.window.map(|n| usize::from(n) - 1);
        f.text(window.map(|w| branch.window_ids[w].as_str()));
        f.text(window.map(|w| branch.staff_ids[w].as_str()));
        f.term(Some(self.outcome.term()));
        f.opt_int(self.score.map(i64::from));
        f.end_row();
    }
}

/// One row of the customer dimension: the customer's state as of a cut (the end of a
/// day: what an export made then shows).
#[derive(Debug, Clone)]
pub struct CustomerRow {
    /// Index behind the customer id (`CU` + index + 1).
    pub id: u32,
    pub customer: Customer,
    /// The instant the state is observed at (exclusive).
    pub at: i64,
}

impl CustomerRow {
    /// The customer's state as of `at`.
    pub fn of(world: &World, index: u32, at: i64) -> Self {
        CustomerRow {
            id: index,
            customer: world.customers[index as usize].clone(),
            at,
        }
    }

    /// Whether the customer exists as of the cut.
    pub fn opened(&self) -> bool {
        self.customer.opened_at < self.at
    }

    pub fn tier(&self) -> CustomerTier {
        match self.customer.tier_changed_at {
            Some(t) if t < self.at => self.customer.tier_final,
            _ => self.customer.tier_initial,
        }
    }

    pub fn closed_at(&self) -> Option<i64> {
        self.customer.closed_at.filter(|&t| t < self.at)
    }

    /// The latest change seen as of the cut: opening, tier change, closing.
    pub fn updated_at(&self) -> i64 {
        let c = &self.customer;
        [Some(c.opened_at), c.tier_changed_at, c.closed_at]
            .into_iter()
            .flatten()
            .filter(|&t| t < self.at)
            .max()
            .unwrap_or(c.opened_at)
    }

    pub fn write(&self, w: &World, f: &mut impl FieldWriter) {
        let c = &self.customer;
        let region = &w.regions[c.region as usize];
        let closed = self.closed_at();
        f.id(Some(Id::customer(self.id)));
        f.text(Some(&region.code));
        f.text(Some(&region.branches[c.branch as usize].id));
        f.term(Some(c.segment.term()));
        f.term(Some(self.tier().term()));
        f.timestamp(Some(c.opened_at));
        f.timestamp(closed);
        f.term(
            c.close_reason
                .filter(|_| closed.is_some())
                .map(CloseReason::term),
        );
        f.timestamp(Some(self.updated_at()));
        f.end_row();
    }
}

/// A generated row of one canonical table.
pub trait Row: Clone {
    const TABLE: Table;
    fn write_row(&self, w: &World, f: &mut impl FieldWriter);
}

macro_rules! impl_row {
    ($($ty:ty => $table:ident),+) => {$(
        impl Row for $ty {
            const TABLE: Table = Table::$table;
            fn write_row(&self, w: &World, f: &mut impl FieldWriter) {
                self.write(w, f)
            }
        }
    )+};
}

pub(crate) use impl_row;

impl_row!(CallRec => Calls, TicketRec => Tickets, CallbackRec => Callbacks, VisitRec => Visits, CustomerRow => Customers);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_zero_padded() {
        let mut buf = [0u8; 32];
        assert_eq!(Id::call(1234).format(&mut buf), b"CL000000001234");
        assert_eq!(Id::customer(0).format(&mut buf), b"CU000000001");
    }
}
