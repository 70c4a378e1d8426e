//! [`SimHandle`] mirrors of `/admin/calendar/*` and `/admin/kms/*`.

use serde_json::Value;

use super::{
    BookingChange, BookingPatch, BookingSpec, BookingTruth, BulkSpec, EventMode, KmsKey, PageFault,
    dto, key_url,
};
use crate::SimHandle;
use crate::recorder::ReceivedRequest;
use crate::state::SimState;

/// Recorded requests whose path is under `/calendar/` or `/kms/`, oldest first.
pub(super) fn calendar_requests(sim: &SimState) -> Vec<ReceivedRequest> {
    let mut all = sim.requests.snapshot();
    all.retain(|r| r.path.starts_with("/calendar/") || r.path.starts_with("/kms/"));
    all
}

impl SimHandle {
    /// Stores a booking and pushes `calendar.meeting.create` (`Full`), `.create.minimal`
    /// (`Minimal`, `{"id","start"}`) or nothing (`None`) to every online mercury socket (as
    /// `POST /admin/calendar/bookings`). Errors on bad fields, an unknown key or a taken id.
    pub fn calendar_create(
        &self,
        spec: BookingSpec,
        mode: EventMode,
    ) -> anyhow::Result<BookingChange> {
        Ok(super::create(&self.sim, &spec, mode)?)
    }

    /// Changes the given fields and pushes `calendar.meeting.update` / `.update.minimal` / nothing
    /// (as `PATCH /admin/calendar/bookings/{id}`).
    pub fn calendar_update(
        &self,
        id: &str,
        patch: BookingPatch,
        mode: EventMode,
    ) -> anyhow::Result<BookingChange> {
        Ok(super::update(&self.sim, id, &patch, mode)?)
    }

    /// Removes a booking and pushes `calendar.meeting.delete` `{"id"}` (`Full`) or nothing (`None`;
    /// `Minimal` is an error) (as `DELETE /admin/calendar/bookings/{id}`).
    pub fn calendar_delete(&self, id: &str, mode: EventMode) -> anyhow::Result<BookingChange> {
        Ok(super::delete(&self.sim, id, mode)?)
    }

    /// Creates `spec.count` bookings at once; their ids in start order (as
    /// `POST /admin/calendar/bookings/bulk`).
    pub fn calendar_bulk(&self, spec: BulkSpec) -> anyhow::Result<Vec<String>> {
        Ok(super::bulk(&self.sim, &spec)?.ids)
    }

    /// Removes every booking without events; how many there were (as
    /// `DELETE /admin/calendar/bookings`).
    pub fn calendar_clear(&self) -> usize {
        self.sim.calendar.clear()
    }

    /// Every booking in plaintext, ordered by start then id: what roomd should end up with (as
    /// `GET /admin/calendar/bookings`).
    pub fn calendar_bookings(&self) -> Vec<BookingTruth> {
        self.sim.calendar.truths()
    }

    /// One booking (as `GET /admin/calendar/bookings/{id}`).
    pub fn calendar_booking(&self, id: &str) -> Option<BookingTruth> {
        self.sim.calendar.get(id).map(|(b, _)| b.truth())
    }

    /// The DTO as the service renders it now (fresh JWEs) (as
    /// `GET /admin/calendar/bookings/{id}/dto`).
    pub fn calendar_dto(&self, id: &str) -> Option<Value> {
        self.sim
            .calendar
            .get(id)
            .map(|(b, key)| dto::render(&b, key.as_ref()))
    }

    /// List page `page` (offset / max + 1) answers `status` the next `count` times (as
    /// `POST /admin/calendar/faults {"fail_page","status","count"}`).
    pub fn calendar_fail_page(&self, page: u64, status: u16, count: u32) -> anyhow::Result<()> {
        self.calendar_page_fault(PageFault::new(page, status, count))
    }

    /// Arms a page fault with every option (`retry_after`, `body`).
    pub fn calendar_page_fault(&self, fault: PageFault) -> anyhow::Result<()> {
        Ok(self.sim.calendar.arm_fault(fault)?)
    }

    /// Page faults still armed (as `GET /admin/calendar/faults`).
    pub fn calendar_faults(&self) -> Vec<PageFault> {
        self.sim.calendar.faults()
    }

    /// Disarms every page fault (as `DELETE /admin/calendar/faults`).
    pub fn calendar_clear_faults(&self) {
        self.sim.calendar.clear_faults();
    }

    /// Recorded requests to the calendar and the KMS (as `GET /admin/calendar/requests`).
    pub fn calendar_requests(&self) -> Vec<ReceivedRequest> {
        calendar_requests(&self.sim)
    }

    /// While `missing`, `GET /kms/keys` answers 404 for key `name`; the bytes never change (as
    /// `POST /admin/kms/keys {"name","missing"}`, which also makes unknown keys; this errors).
    pub fn kms_set_missing(&self, name: &str, missing: bool) -> anyhow::Result<()> {
        self.sim.calendar.kms_set_missing(name, missing)?;
        Ok(())
    }

    /// Makes key `name` (32 random bytes) unless the KMS has it; the key (as
    /// `POST /admin/kms/keys {"name"}`).
    pub fn kms_add_key(&self, name: &str) -> anyhow::Result<KmsKey> {
        Ok(self.sim.calendar.kms_upsert(name, None)?)
    }

    /// Every KMS key with its bytes (as `GET /admin/kms/keys`).
    pub fn kms_keys(&self) -> Vec<KmsKey> {
        self.sim.calendar.kms_keys()
    }

    /// `kms://kms.sim.invalid/keys/<name>`.
    pub fn kms_key_url(&self, name: &str) -> String {
        key_url(name)
    }
}
