//! A scripted DNS server on a loopback address (hickory-server, UDP and TCP on one port).
//!
//! Records are declared in code with [`DnsZoneSet`] (or parsed from zone-file text), served
//! authoritatively by [`ScriptedDns`], and can be changed between test steps (an admin changing
//! MX during a cutover). TXT records carry SPF, DMARC and DKIM policies (texts over 255 bytes
//! are served as 255-byte strings, RFC 1035 §3.3.14). Faults (NXDOMAIN, SERVFAIL, REFUSED,
//! silence) can be switched on per queried name, per name and record type (SERVFAIL for a TXT
//! lookup only: SPF `temperror`), or for every query. The server counts the queries it
//! receives, so a test can assert that a lookup happened, and lists queries for names outside
//! every served zone.
//!
//! This double shares no code with mailsim-io's resolver: they only meet on the wire.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mailsim_testkit::dns::{DnsZoneSet, Fault, ScriptedDns};
//! let zones = DnsZoneSet::new()
//!     .mx("contoso.test", 10, "mx1.contoso.test")
//!     .a("mx1.contoso.test", "203.0.113.25".parse().unwrap())
//!     .null_mx("nomail.test");
//! let dns = ScriptedDns::start("127.0.0.53".parse().unwrap(), zones).await?;
//! dns.set_fault("contoso.test", Fault::ServFail);
//! // ... point the resolver at dns.addr() ...
//! dns.stop().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType};

/// TTL of every record declared in code. Irrelevant to mailsim's resolver (it does not cache),
/// but kept short in case another resolver is pointed at the server.
const TTL: u32 = 5;

/// How long an idle TCP connection to the server is kept open.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// A fault the server injects instead of answering from its zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer NXDOMAIN (no SOA in the authority section).
    NxDomain,
    /// Answer SERVFAIL.
    ServFail,
    /// Never answer: the resolver times out.
    Silence,
    /// Answer REFUSED.
    Refused,
}

/// An error in a declared record or zone text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dns zone: {0}")]
pub struct ZoneError(pub String);

impl From<ZoneError> for io::Error {
    fn from(e: ZoneError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// The records the scripted server serves, grouped into zones.
///
/// A name is placed in the most specific declared zone that contains it. When a record is added
/// for a name no zone contains, a zone is created for its last two labels (`mx1.contoso.test` →
/// `contoso.test`); declare a zone explicitly with [`DnsZoneSet::zone`] for other cuts (for
/// example `contoso.co.uk`). Each zone gets a synthesised SOA unless its zone text has one.
///
/// Builder methods take and return `self`; an invalid name does not panic but is reported by
/// [`DnsZoneSet::check`], [`ScriptedDns::start`] and [`ScriptedDns::replace_records`].
#[derive(Clone, Debug, Default)]
pub struct DnsZoneSet {
    /// Zone origins, lower-case and fully qualified.
    origins: BTreeSet<Name>,
    /// Every record, in declaration order; grouped into zones when the catalog is built.
    records: Vec<Record>,
    /// Errors met while declaring, reported when the set is served.
    errors: Vec<String>,
}

impl DnsZoneSet {
    /// An empty set: every query is answered REFUSED (no zone served).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses zone-file text (RFC 1035 master format) for `origin`; relative names are taken
    /// relative to it. A missing SOA is synthesised, and a missing `$TTL` defaults to 5 seconds.
    pub fn from_zone_text(origin: &str, text: &str) -> Result<Self, ZoneError> {
        Self::new().with_zone_text(origin, text)
    }

    /// Adds the records of zone-file text for `origin` to this set.
    pub fn with_zone_text(mut self, origin: &str, text: &str) -> Result<Self, ZoneError> {
        let origin_name = parse_name(origin).map_err(ZoneError)?;
        let text = if text.contains("$TTL") { text.to_string() } else { format!("$TTL {TTL}\n{text}") };
        let (parsed_origin, rrsets) = Parser::new(text, None, Some(origin_name))
            .parse()
            .map_err(|e| ZoneError(format!("zone text for {origin}: {e}")))?;
        self.origins.insert(lower_fqdn(&parsed_origin));
        for rrset in rrsets.into_values() {
            for record in rrset.records_without_rrsigs() {
                let mut record = record.clone();
                record.name = lower_fqdn(&record.name);
                if let RData::TXT(txt) = &record.data
                    && txt.txt_data.iter().any(|s| s.len() > 255)
                {
                    // A zone file may hold one long quoted string (a DKIM key); on the wire a
                    // character-string is at most 255 bytes (RFC 1035 §3.3.14, RFC 7208 §3.3).
                    let parts: Vec<&[u8]> = txt.txt_data.iter().flat_map(|s| s.chunks(255)).collect();
                    record.data = RData::TXT(TXT::from_bytes(parts));
                }
                self.ensure_origin(&record.name);
                self.records.push(record);
            }
        }
        Ok(self)
    }

    /// Declares a zone explicitly (useful for a cut other than the last two labels).
    pub fn zone(mut self, origin: &str) -> Self {
        match parse_name(origin) {
            Ok(name) => {
                self.origins.insert(name);
            }
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Adds `domain MX pref exchange`.
    pub fn mx(mut self, domain: &str, preference: u16, exchange: &str) -> Self {
        match parse_name(exchange) {
            Ok(exchange) => self.push(domain, RData::MX(MX::new(preference, exchange))),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Adds the null MX of RFC 7505: `domain MX 0 .`.
    pub fn null_mx(mut self, domain: &str) -> Self {
        self.push(domain, RData::MX(MX::new(0, Name::root())));
        self
    }

    /// Adds `name A addr`.
    pub fn a(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.push(name, RData::A(A(addr)));
        self
    }

    /// Adds `name AAAA addr`.
    pub fn aaaa(mut self, name: &str, addr: Ipv6Addr) -> Self {
        self.push(name, RData::AAAA(AAAA(addr)));
        self
    }

    /// Adds `name TXT text` (split into 255-byte strings as DNS requires): an SPF policy
    /// (`v=spf1 …` at the domain), a DMARC policy (`v=DMARC1; …` at `_dmarc.domain`) or a DKIM
    /// key (`v=DKIM1; k=rsa; p=…` at `selector._domainkey.domain`).
    pub fn txt(mut self, name: &str, text: &str) -> Self {
        self.push(name, RData::TXT(TXT::new(split_txt(text))));
        self
    }

    /// Replaces every TXT record of `name` with `texts`, one record each (empty: remove them).
    pub fn set_txt<S: AsRef<str>>(&mut self, name: &str, texts: impl IntoIterator<Item = S>) {
        self.remove_type(name, RecordType::TXT);
        for text in texts {
            self.push(name, RData::TXT(TXT::new(split_txt(text.as_ref()))));
        }
    }

    /// The TXT records of `name`, each with its strings joined (as SPF, DKIM and DMARC read them).
    pub fn txt_of(&self, name: &str) -> Vec<String> {
        let Ok(name) = parse_name(name) else { return Vec::new() };
        self.records
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect()),
                _ => None,
            })
            .collect()
    }

    /// Replaces every MX record of `domain` with `records` (`(preference, exchange)`; an
    /// exchange of `""` or `"."` is the null MX). An empty list removes the domain's MX records.
    pub fn set_mx<S: AsRef<str>>(&mut self, domain: &str, records: impl IntoIterator<Item = (u16, S)>) {
        self.remove_type(domain, RecordType::MX);
        for (preference, exchange) in records {
            let exchange = exchange.as_ref();
            let exchange = if exchange.is_empty() || exchange == "." { Ok(Name::root()) } else { parse_name(exchange) };
            match exchange {
                Ok(exchange) => self.push(domain, RData::MX(MX::new(preference, exchange))),
                Err(e) => self.errors.push(e),
            }
        }
    }

    /// Replaces every A record of `name` with `addrs` (empty: remove them).
    pub fn set_a(&mut self, name: &str, addrs: &[Ipv4Addr]) {
        self.remove_type(name, RecordType::A);
        for addr in addrs {
            self.push(name, RData::A(A(*addr)));
        }
    }

    /// Removes every record owned by `name` (its zone, if any, stays).
    pub fn remove_name(&mut self, name: &str) {
        match parse_name(name) {
            Ok(name) => self.records.retain(|r| r.name != name),
            Err(e) => self.errors.push(e),
        }
    }

    /// The first error met while declaring records, if any.
    pub fn check(&self) -> Result<(), ZoneError> {
        match self.errors.first() {
            Some(e) => Err(ZoneError(e.clone())),
            None => Ok(()),
        }
    }

    /// The zone origins, without trailing dot.
    pub fn zone_names(&self) -> Vec<String> {
        self.origins.iter().map(display_name).collect()
    }

    /// Whether `name` lies inside one of the zones.
    pub fn serves(&self, name: &str) -> bool {
        parse_name(name).is_ok_and(|n| self.zone_for(&n).is_some())
    }

    fn remove_type(&mut self, name: &str, rtype: RecordType) {
        match parse_name(name) {
            Ok(name) => self.records.retain(|r| !(r.name == name && r.record_type() == rtype)),
            Err(e) => self.errors.push(e),
        }
    }

    fn push(&mut self, name: &str, rdata: RData) {
        match parse_name(name) {
            Ok(name) => {
                self.ensure_origin(&name);
                self.records.push(Record::from_rdata(name, TTL, rdata));
            }
            Err(e) => self.errors.push(e),
        }
    }

    fn ensure_origin(&mut self, name: &Name) {
        if self.zone_for(name).is_none() {
            let labels = name.num_labels() as usize;
            let origin = if labels >= 2 { name.trim_to(2) } else { name.clone() };
            self.origins.insert(lower_fqdn(&origin));
        }
    }

    /// The most specific zone containing `name`.
    fn zone_for(&self, name: &Name) -> Option<&Name> {
        self.origins.iter().filter(|o| o.zone_of(name)).max_by_key(|o| o.num_labels())
    }

    /// Builds the catalog served for this set, with `serial` in synthesised SOAs.
    fn build_catalog(&self, serial: u32) -> Result<Catalog, ZoneError> {
        self.check()?;
        let mut zones: HashMap<Name, Vec<&Record>> = self.origins.iter().map(|o| (o.clone(), Vec::new())).collect();
        for record in &self.records {
            if let Some(origin) = self.zone_for(&record.name)
                && let Some(list) = zones.get_mut(origin)
            {
                list.push(record);
            }
        }
        let mut catalog = Catalog::new();
        for (origin, records) in zones {
            let mut zone =
                InMemoryZoneHandler::<TokioRuntimeProvider>::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
            let has_soa = records.iter().any(|r| r.record_type() == RecordType::SOA && r.name == origin);
            if !has_soa {
                let soa = synthesised_soa(&origin, serial)?;
                zone.upsert_mut(soa, serial);
            }
            for record in records {
                if !zone.upsert_mut(record.clone(), serial) {
                    return Err(ZoneError(format!(
                        "cannot add {} {} to zone {}",
                        display_name(&record.name),
                        record.record_type(),
                        display_name(&origin)
                    )));
                }
            }
            let handler: Arc<dyn ZoneHandler> = Arc::new(zone);
            catalog.upsert(origin.clone().into(), vec![handler]);
        }
        Ok(catalog)
    }
}

fn synthesised_soa(origin: &Name, serial: u32) -> Result<Record, ZoneError> {
    let child = |label: &str| {
        Name::from_ascii(label)
            .and_then(|n| n.append_domain(origin))
            .map_err(|e| ZoneError(format!("SOA for {}: {e}", display_name(origin))))
    };
    let soa = SOA::new(child("ns")?, child("hostmaster")?, serial, 3600, 600, 86_400, TTL);
    Ok(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)))
}

fn split_txt(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 255 {
            parts.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// A record type by its name (`TXT`, `mx`, ...), as a fault is scoped to it.
pub fn parse_record_type(text: &str) -> Result<RecordType, ZoneError> {
    match text.trim().to_ascii_uppercase().parse::<RecordType>() {
        Ok(RecordType::Unknown(_)) | Err(_) => {
            Err(ZoneError(format!("unknown record type {text:?} (TXT, MX, A, AAAA, PTR, CNAME, ...)")))
        }
        Ok(t) => Ok(t),
    }
}

/// Parses a name as lower-case and fully qualified.
fn parse_name(name: &str) -> Result<Name, String> {
    Name::from_ascii(name.trim_end_matches('.'))
        .map(|n| lower_fqdn(&n))
        .map_err(|e| format!("invalid DNS name {name:?}: {e}"))
}

fn lower_fqdn(name: &Name) -> Name {
    let mut n = name.to_lowercase();
    n.set_fqdn(true);
    n
}

/// A name as tests write it: lower-case, no trailing dot (the root is `""`).
fn display_name(name: &Name) -> String {
    normalise(&name.to_ascii())
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// One query the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedQuery {
    /// Queried name, lower-case, without trailing dot.
    pub name: String,
    /// Record type as text (`"MX"`, `"A"`, ...).
    pub record_type: String,
    /// The fault injected for it, if any.
    pub fault: Option<Fault>,
}

/// State shared between the handle and the request handler.
struct Shared {
    catalog: RwLock<Arc<Catalog>>,
    zones: Mutex<DnsZoneSet>,
    serial: AtomicU32,
    /// Per name, and per (name, record type): `None` applies to every type.
    faults: Mutex<HashMap<(String, Option<RecordType>), Fault>>,
    global_fault: Mutex<Option<Fault>>,
    log: Mutex<Vec<ObservedQuery>>,
    unexpected: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn current_catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The request handler: records the query, injects a fault or delegates to the current catalog.
struct FaultingHandler(Arc<Shared>);

#[async_trait::async_trait]
impl RequestHandler for FaultingHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let shared = &self.0;
        let (name, rtype) = match request.queries.queries().first() {
            Some(q) => (normalise(&q.name().to_string()), Some(q.query_type())),
            None => (String::new(), None),
        };
        let record_type = rtype.map(|t| t.to_string()).unwrap_or_default();
        let fault = {
            let faults = lock(&shared.faults);
            let key = (name.clone(), rtype);
            faults.get(&key).or_else(|| faults.get(&(name.clone(), None))).copied()
        }
        .or(*lock(&shared.global_fault));
        if !name.is_empty() && !lock(&shared.zones).serves(&name) {
            lock(&shared.unexpected).push(name.clone());
        }
        lock(&shared.log).push(ObservedQuery { name, record_type, fault });

        let code = match fault {
            None => {
                let catalog = shared.current_catalog();
                return catalog.handle_request::<R, T>(request, response_handle).await;
            }
            Some(Fault::Silence) => {
                // Never answer; the ResponseInfo only feeds the server's own logging.
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                return ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() });
            }
            Some(Fault::NxDomain) => ResponseCode::NXDomain,
            Some(Fault::ServFail) => ResponseCode::ServFail,
            Some(Fault::Refused) => ResponseCode::Refused,
        };
        let response = MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, code);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = code;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}

/// A running scripted DNS server. Dropping it stops the server (without waiting);
/// [`ScriptedDns::stop`] waits until the sockets are closed.
pub struct ScriptedDns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<Server<FaultingHandler>>,
}

impl std::fmt::Debug for ScriptedDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedDns").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ScriptedDns {
    /// Starts serving `zones` on `bind_ip` (a loopback address), UDP and TCP on one free port.
    /// Must be called inside a tokio runtime.
    pub async fn start(bind_ip: IpAddr, zones: DnsZoneSet) -> io::Result<ScriptedDns> {
        Self::start_on(SocketAddr::new(bind_ip, 0), zones).await
    }

    /// Like [`ScriptedDns::start`] on a chosen port (`0`: any free port, the same for UDP and TCP).
    pub async fn start_on(addr: SocketAddr, zones: DnsZoneSet) -> io::Result<ScriptedDns> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("scripted DNS binds loopback addresses only, not {}", addr.ip()),
            ));
        }
        let serial = 1;
        let catalog = zones.build_catalog(serial)?;
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let shared = Arc::new(Shared {
            catalog: RwLock::new(Arc::new(catalog)),
            zones: Mutex::new(zones),
            serial: AtomicU32::new(serial),
            faults: Mutex::new(HashMap::new()),
            global_fault: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            unexpected: Mutex::new(Vec::new()),
        });
        let mut server = Server::new(FaultingHandler(shared.clone()));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, 64);
        Ok(ScriptedDns { addr, shared, server: Some(server) })
    }

    /// The address (UDP and TCP) the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` for every query of `name` (exact name, any record type), until cleared.
    pub fn set_fault(&self, name: &str, fault: Fault) {
        lock(&self.shared.faults).insert((normalise(name), None), fault);
    }

    /// Injects `fault` for queries of `name` of one record type only (`TXT`, `MX`, `A`, ...,
    /// case-insensitive): SERVFAIL for `fabrikam.test TXT` makes SPF a `temperror` while mail to
    /// fabrikam.test still routes. A fault of this kind wins over one for the whole name.
    pub fn set_fault_for(&self, name: &str, record_type: &str, fault: Fault) -> Result<(), ZoneError> {
        let rtype = parse_record_type(record_type)?;
        lock(&self.shared.faults).insert((normalise(name), Some(rtype)), fault);
        Ok(())
    }

    /// Removes the faults for `name`: the one for every type and those per record type.
    pub fn clear_fault(&self, name: &str) {
        let name = normalise(name);
        lock(&self.shared.faults).retain(|(n, _), _| *n != name);
    }

    /// Removes the fault for `name` and one record type only.
    pub fn clear_fault_for(&self, name: &str, record_type: &str) -> Result<(), ZoneError> {
        let rtype = parse_record_type(record_type)?;
        lock(&self.shared.faults).remove(&(normalise(name), Some(rtype)));
        Ok(())
    }

    /// Injects `fault` for every query whose name has no fault of its own.
    pub fn set_global_fault(&self, fault: Fault) {
        *lock(&self.shared.global_fault) = Some(fault);
    }

    /// Removes the global fault.
    pub fn clear_global_fault(&self) {
        *lock(&self.shared.global_fault) = None;
    }

    /// Removes every fault, per name and global.
    pub fn clear_all_faults(&self) {
        lock(&self.shared.faults).clear();
        self.clear_global_fault();
    }

    /// Serves `zones` from now on, in place of the current records. On error nothing changes.
    pub fn replace_records(&self, zones: DnsZoneSet) -> Result<(), ZoneError> {
        let mut current = lock(&self.shared.zones);
        self.install(&mut current, zones)
    }

    /// Changes the served records with `change`, applied to a copy of the current set; the
    /// result is served from the next query on. On error nothing changes.
    pub fn update(&self, change: impl FnOnce(&mut DnsZoneSet)) -> Result<(), ZoneError> {
        let mut current = lock(&self.shared.zones);
        let mut next = current.clone();
        change(&mut next);
        self.install(&mut current, next)
    }

    /// Replaces the MX records of `domain` (see [`DnsZoneSet::set_mx`]).
    pub fn set_mx<S: AsRef<str>>(
        &self,
        domain: &str,
        records: impl IntoIterator<Item = (u16, S)>,
    ) -> Result<(), ZoneError> {
        self.update(|z| z.set_mx(domain, records))
    }

    /// A copy of the records served now.
    pub fn zones(&self) -> DnsZoneSet {
        lock(&self.shared.zones).clone()
    }

    fn install(&self, current: &mut DnsZoneSet, next: DnsZoneSet) -> Result<(), ZoneError> {
        let serial = self.shared.serial.fetch_add(1, Ordering::SeqCst) + 1;
        let catalog = next.build_catalog(serial)?;
        *self.shared.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        *current = next;
        Ok(())
    }

    /// Number of queries received so far (faulted ones included).
    pub fn query_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Number of queries received for `name` (any record type).
    pub fn queries_for(&self, name: &str) -> usize {
        let name = normalise(name);
        lock(&self.shared.log).iter().filter(|q| q.name == name).count()
    }

    /// Every query received so far, in order.
    pub fn queries(&self) -> Vec<ObservedQuery> {
        lock(&self.shared.log).clone()
    }

    /// Names queried that lie outside every served zone (answered REFUSED unless faulted),
    /// in order, with repeats.
    pub fn unexpected(&self) -> Vec<String> {
        lock(&self.shared.unexpected).clone()
    }

    /// Forgets the queries received so far.
    pub fn reset_queries(&self) {
        lock(&self.shared.log).clear();
        lock(&self.shared.unexpected).clear();
    }

    /// Stops the server and waits until its tasks have ended.
    pub async fn stop(mut self) {
        if let Some(mut server) = self.server.take() {
            // Errors here are from tasks that already failed; nothing is left to clean up.
            let _ = server.shutdown_gracefully().await;
        }
    }
}

impl Drop for ScriptedDns {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Cancelling stops the accept loops; dropping the server aborts its tasks.
            server.shutdown_token().cancel();
        }
    }
}

/// Binds UDP on `addr` and TCP on the same port, retrying with a new port on a collision when
/// the port was left to the system.
async fn bind_pair(addr: SocketAddr) -> io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let mut last_error = None;
    for _ in 0..32 {
        let udp = tokio::net::UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && addr.port() == 0 => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port pair")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::{Message, MessageType, OpCode, Query};

    /// Sends one query over UDP and waits up to `wait` for the answer.
    async fn ask(server: SocketAddr, name: &str, rtype: RecordType, wait: Duration) -> Option<Message> {
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(server.ip(), 0)).await.unwrap();
        let mut msg = Message::new(4242, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii(format!("{name}.")).unwrap(), rtype));
        socket.send_to(&msg.to_vec().unwrap(), server).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(wait, socket.recv(&mut buf)).await.ok()?.unwrap();
        Some(Message::from_vec(&buf[..n]).unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const WAIT: Duration = Duration::from_secs(2);

    fn mx_of(msg: &Message) -> Vec<(u16, String)> {
        let mut v: Vec<_> = msg
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(m) => Some((m.preference, display_name(&m.exchange))),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn dns_serves_records_built_in_code() {
        let zones = DnsZoneSet::new()
            .mx("contoso.test", 20, "mx2.contoso.test")
            .mx("contoso.test", 10, "MX1.Contoso.Test.")
            .a("mx1.contoso.test", Ipv4Addr::new(203, 0, 113, 25))
            .aaaa("mx1.contoso.test", Ipv6Addr::LOCALHOST)
            .txt("contoso.test", "v=spf1 ip4:203.0.113.0/24 -all")
            .null_mx("nomail.test");
        assert_eq!(zones.zone_names(), vec!["contoso.test", "nomail.test"]);
        let dns = ScriptedDns::start(ip("127.0.60.1"), zones).await.unwrap();
        let addr = dns.addr();
        assert_eq!(addr.ip(), ip("127.0.60.1"));
        assert_ne!(addr.port(), 0);

        let m = ask(addr, "contoso.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(mx_of(&m), vec![(10, "mx1.contoso.test".into()), (20, "mx2.contoso.test".into())]);

        let m = ask(addr, "mx1.contoso.test", RecordType::A, WAIT).await.unwrap();
        assert!(matches!(m.answers[0].data, RData::A(A(a)) if a == Ipv4Addr::new(203, 0, 113, 25)));

        let m = ask(addr, "nomail.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(mx_of(&m), vec![(0, String::new())]);

        let m = ask(addr, "nope.contoso.test", RecordType::A, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

        let m = ask(addr, "mx1.contoso.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());

        let m = ask(addr, "fabrikam.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);

        assert_eq!(dns.query_count(), 6);
        assert_eq!(dns.queries_for("contoso.test"), 1);
        assert_eq!(dns.unexpected(), vec!["fabrikam.test".to_string()]);
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_faults_and_record_changes_apply_at_once() {
        let zones = DnsZoneSet::new().mx("contoso.test", 10, "mx1.contoso.test");
        let dns = ScriptedDns::start(ip("127.0.60.2"), zones).await.unwrap();
        let addr = dns.addr();

        dns.set_fault("Contoso.Test.", Fault::ServFail);
        let m = ask(addr, "contoso.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        dns.set_fault("contoso.test", Fault::NxDomain);
        let m = ask(addr, "contoso.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        dns.set_fault("contoso.test", Fault::Silence);
        assert!(ask(addr, "contoso.test", RecordType::MX, Duration::from_millis(200)).await.is_none());
        dns.clear_fault("contoso.test");

        dns.set_global_fault(Fault::Refused);
        let m = ask(addr, "contoso.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        dns.clear_global_fault();

        dns.set_mx("contoso.test", vec![(5, "gw.contoso.test".to_string())]).unwrap();
        let m = ask(addr, "contoso.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(mx_of(&m), vec![(5, "gw.contoso.test".into())]);
        let faults: Vec<_> = dns.queries().iter().map(|q| q.fault).collect();
        assert_eq!(
            faults,
            vec![Some(Fault::ServFail), Some(Fault::NxDomain), Some(Fault::Silence), Some(Fault::Refused), None]
        );
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_zone_text_and_tcp() {
        let text = "@ IN MX 10 mx\n\
                    mx IN A 127.0.0.30\n";
        let zones = DnsZoneSet::from_zone_text("fabrikam.test", text).unwrap();
        let dns = ScriptedDns::start(ip("127.0.60.3"), zones).await.unwrap();
        let m = ask(dns.addr(), "fabrikam.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(mx_of(&m), vec![(10, "mx.fabrikam.test".into())]);

        // The same port answers over TCP (two-byte length prefix).
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(dns.addr()).await.unwrap();
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(Name::from_ascii("mx.fabrikam.test.").unwrap(), RecordType::A));
        let bytes = q.to_vec().unwrap();
        tcp.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
        tcp.write_all(&bytes).await.unwrap();
        let len = tcp.read_u16().await.unwrap() as usize;
        let mut buf = vec![0; len];
        tcp.read_exact(&mut buf).await.unwrap();
        let m = Message::from_vec(&buf).unwrap();
        assert!(matches!(m.answers[0].data, RData::A(A(a)) if a == Ipv4Addr::new(127, 0, 0, 30)));
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_refuses_non_loopback_and_reports_bad_names() {
        let err = ScriptedDns::start(ip("192.0.2.1"), DnsZoneSet::new()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let bad = DnsZoneSet::new().a("bad..name", Ipv4Addr::LOCALHOST);
        assert!(bad.check().is_err());
        let err = ScriptedDns::start(ip("127.0.60.4"), bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(DnsZoneSet::from_zone_text("x.test", "@ IN MX notanumber").is_err());
    }

    #[test]
    fn dns_zone_grouping_prefers_the_most_specific_zone() {
        let zones = DnsZoneSet::new()
            .a("mail.contoso.co.uk", Ipv4Addr::LOCALHOST)
            .zone("contoso.co.uk")
            .a("www.contoso.co.uk", Ipv4Addr::LOCALHOST);
        assert_eq!(zones.zone_names(), vec!["co.uk", "contoso.co.uk"]);
        assert!(zones.serves("mail.contoso.co.uk"));
        assert!(!zones.serves("contoso.test"));
        assert_eq!(split_txt(&"x".repeat(300)).iter().map(String::len).collect::<Vec<_>>(), vec![255, 45]);
        zones.build_catalog(1).unwrap();
    }

    /// A hickory resolver (what mail-auth wraps) that asks only `server`: no system
    /// configuration, no hosts file, no cache.
    fn resolver_config(
        server: SocketAddr,
    ) -> (hickory_resolver::config::ResolverConfig, hickory_resolver::config::ResolverOpts) {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
        };
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let config =
            ResolverConfig::from_parts(None, vec![], vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])]);
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        opts.timeout = Duration::from_millis(300);
        opts.attempts = 1;
        opts.ndots = 0;
        (config, opts)
    }

    fn dkim_like_key() -> String {
        format!("v=DKIM1; k=rsa; p={}", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".repeat(9))
    }

    #[tokio::test]
    async fn dns_txt_records_reach_a_real_resolver_split_and_whole() {
        let key = dkim_like_key();
        assert!(key.len() > 255);
        let zones = DnsZoneSet::new()
            .txt("fabrikam.test", "v=spf1 ip4:203.0.113.0/24 -all")
            .txt("_dmarc.fabrikam.test", "v=DMARC1; p=reject")
            .txt("s1._domainkey.fabrikam.test", &key)
            .with_zone_text("northwind.test", &format!("s2._domainkey.northwind.test. TXT \"{key}\"\n"))
            .unwrap();
        assert_eq!(zones.txt_of("_dmarc.fabrikam.test"), vec!["v=DMARC1; p=reject".to_string()]);
        let dns = ScriptedDns::start(ip("127.0.60.5"), zones).await.unwrap();
        let (config, opts) = resolver_config(dns.addr());
        let resolver = hickory_resolver::TokioResolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .unwrap();
        let txt = |name: &'static str| {
            let resolver = resolver.clone();
            async move {
                let lookup = resolver.txt_lookup(name).await.unwrap();
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.len()).collect::<Vec<_>>()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(txt("fabrikam.test.").await, vec![vec![30]]);
        assert_eq!(txt("_dmarc.fabrikam.test.").await, vec![vec![18]]);
        // Built in code or read from zone text, a long record goes out as 255-byte strings.
        let want = vec![key.as_bytes().chunks(255).map(<[u8]>::len).collect::<Vec<_>>()];
        assert_eq!(txt("s1._domainkey.fabrikam.test.").await, want);
        assert_eq!(txt("s2._domainkey.northwind.test.").await, want);
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_spf_of_mail_auth_passes_fails_and_temperrors_against_the_world() {
        use mail_auth::spf::verify::SpfParameters;
        use mail_auth::{MessageAuthenticator, SpfResult};
        let zones = DnsZoneSet::new()
            .txt("fabrikam.test", "v=spf1 ip4:203.0.113.0/24 -all")
            .mx("fabrikam.test", 10, "mx.fabrikam.test")
            .a("mx.fabrikam.test", Ipv4Addr::new(203, 0, 113, 25))
            .txt("broken.test", "v=spf1 ip4:not-an-address -all");
        let dns = ScriptedDns::start(ip("127.0.60.6"), zones).await.unwrap();
        let (config, opts) = resolver_config(dns.addr());
        let auth = MessageAuthenticator::new(config, opts).unwrap();
        let spf = |ip: &str, from: &'static str| {
            let ip = ip.parse().unwrap();
            let auth = &auth;
            async move {
                let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or(from);
                auth.verify_spf(SpfParameters::verify_mail_from(ip, domain, "tenant.mailsim.test", from)).await.result()
            }
        };
        assert_eq!(spf("203.0.113.25", "a@fabrikam.test").await, SpfResult::Pass);
        assert_eq!(spf("198.51.100.7", "a@fabrikam.test").await, SpfResult::Fail);
        assert_eq!(spf("203.0.113.25", "a@nospf.fabrikam.test").await, SpfResult::None);
        assert_eq!(spf("203.0.113.25", "a@broken.test").await, SpfResult::PermError);

        // A fault on the name's TXT only: SPF cannot be evaluated, MX still answers.
        dns.set_fault_for("fabrikam.test", "txt", Fault::ServFail).unwrap();
        assert_eq!(spf("203.0.113.25", "a@fabrikam.test").await, SpfResult::TempError);
        let m = ask(dns.addr(), "fabrikam.test", RecordType::MX, WAIT).await.unwrap();
        assert_eq!(mx_of(&m), vec![(10, "mx.fabrikam.test".into())]);
        dns.set_fault_for("fabrikam.test", "TXT", Fault::Silence).unwrap();
        assert_eq!(spf("203.0.113.25", "a@fabrikam.test").await, SpfResult::TempError);
        dns.clear_fault_for("fabrikam.test", "TXT").unwrap();
        assert_eq!(spf("203.0.113.25", "a@fabrikam.test").await, SpfResult::Pass);
        // A fault for the whole name covers TXT too.
        dns.set_fault("fabrikam.test", Fault::ServFail);
        assert_eq!(spf("203.0.113.25", "a@fabrikam.test").await, SpfResult::TempError);
        dns.clear_fault("fabrikam.test");
        assert!(dns.set_fault_for("fabrikam.test", "TEXT", Fault::ServFail).is_err());

        // Records changed between steps are seen at the next evaluation.
        dns.update(|z| z.set_txt("fabrikam.test", ["v=spf1 ip4:198.51.100.0/24 ~all"])).unwrap();
        assert_eq!(spf("198.51.100.7", "a@fabrikam.test").await, SpfResult::Pass);
        assert_eq!(spf("203.0.113.25", "a@fabrikam.test").await, SpfResult::SoftFail);
        dns.stop().await;
    }
}
