//! `mailsim import`: the JSON of `Get-AcceptedDomain`, `Get-InboundConnector`,
//! `Get-OutboundConnector` and `Get-TransportRule` (`| ConvertTo-Json -Depth 5`) → a tenant file
//! with EXO's names (exo-behaviour §15).
//!
//! Contract:
//! - Input (§15.1, §15.2): each file holds one export: an object, an array, or nothing (an empty
//!   pipeline writes no output; `null` too). Which cmdlet wrote a file is read from its objects'
//!   properties ([`detect`]); a file of another cmdlet is refused by name. Files are UTF-8 (a BOM is
//!   skipped) or UTF-16 with a BOM (Windows PowerShell 5.1's `>` writes that), at most
//!   [`MAX_IMPORT_BYTES`]; anything else is a clear error, never a panic.
//! - Values: enums as strings or as §15.4's integers; `"\/Date(ms)\/"` (PS 5.1) and ISO dates;
//!   `smtp:contoso.com;1` address spaces; SmartHosts as strings or objects. A value collapsed by
//!   `ConvertTo-Json`'s default `-Depth 2` (`@{...}`, a .NET type name) is refused with the fix.
//! - Output: a table per object, commented with its source (file, `Identity`, `Guid`); properties
//!   with behaviour in mailsim as keys; settable ones without behaviour (the loader's
//!   `inert` lists, `ClientHostNames`, `TestMode`) and unknown ones as comments, all named in one
//!   warning; read-only ones (§15.3's common set and each cmdlet's Get-only set) dropped silently.
//!   The written text is loaded by the tenant loader before it is returned, so what `import` writes
//!   is a tenant mailsim runs; a loader refusal is reported against the JSON object it came from.
//! - Errors name the JSON file, the object (its `Identity`) and the property as a JSON pointer.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use mailsim_core::tenant::load::{self, inert};
use mailsim_core::time::Timestamp;
use serde_json::{Map, Value};

/// The largest export read: 64 MiB (a 1,000-connector export is about 3 MB).
pub const MAX_IMPORT_BYTES: u64 = 64 << 20;

/// Exit status of `mailsim import` when an input is refused (bad JSON, wrong cmdlet, a value
/// that cannot be imported, a tenant the loader refuses).
pub const EXIT_REFUSED: i32 = 1;

/// The four exports mailsim reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cmdlet {
    /// `Get-AcceptedDomain`.
    AcceptedDomain,
    /// `Get-InboundConnector`.
    InboundConnector,
    /// `Get-OutboundConnector`.
    OutboundConnector,
    /// `Get-TransportRule`.
    TransportRule,
}

impl Cmdlet {
    /// The cmdlet's name.
    pub fn name(self) -> &'static str {
        match self {
            Cmdlet::AcceptedDomain => "Get-AcceptedDomain",
            Cmdlet::InboundConnector => "Get-InboundConnector",
            Cmdlet::OutboundConnector => "Get-OutboundConnector",
            Cmdlet::TransportRule => "Get-TransportRule",
        }
    }

    /// The tenant file's table.
    pub fn table(self) -> &'static str {
        match self {
            Cmdlet::AcceptedDomain => "AcceptedDomain",
            Cmdlet::InboundConnector => "InboundConnector",
            Cmdlet::OutboundConnector => "OutboundConnector",
            Cmdlet::TransportRule => "TransportRule",
        }
    }
}

/// Why an import failed: the file, the object, the property, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    /// The JSON file as given.
    pub file: String,
    /// The object's `Identity` (or `Name`) when the error is inside one.
    pub identity: Option<String>,
    /// JSON pointer of the value at fault (`/3/SenderIPAddresses/1`), or a position `line:col`.
    pub at: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub hint: Option<String>,
}

impl ImportError {
    fn file(file: &str, message: impl Into<String>) -> Self {
        Self { file: file.to_string(), identity: None, at: None, message: message.into(), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ImportError {
    /// `inbound.json: /2/SenderIPAddresses/0 (Identity "From gateway"): message`, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(at) = &self.at {
            write!(f, ": {at}")?;
        }
        if let Some(id) = &self.identity {
            write!(f, " (Identity \"{id}\")")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportError {}

/// The tenant file written, and what the admin should know about it.
#[derive(Debug)]
pub struct Imported {
    /// The tenant file's text.
    pub toml: String,
    /// Warnings: the one listing properties kept as comments, then the loader's own.
    pub warnings: Vec<String>,
    /// Objects imported per cmdlet.
    pub counts: BTreeMap<Cmdlet, usize>,
}

/// The `.json` files of `paths`: files as given, directories' `*.json` files sorted by name.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p)
                .map_err(|e| ImportError::file(&p.display().to_string(), format!("cannot read the folder: {e}")))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x.eq_ignore_ascii_case("json")))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ImportError::file(&p.display().to_string(), "the folder holds no .json file"));
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The text of one export: at most [`MAX_IMPORT_BYTES`] are read (so a huge or endless input costs
/// bounded memory), UTF-8 or BOM-marked UTF-16.
pub fn read_input(path: &Path) -> Result<String, ImportError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ImportError::file(&name, format!("cannot read the file: {e}")))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(ImportError::file(&name, "is a directory"));
    }
    // A regular file over the cap is refused unread; other inputs (a pipe) are read up to it.
    if let Ok(m) = file.metadata()
        && m.is_file()
        && m.len() > MAX_IMPORT_BYTES
    {
        return Err(too_large(&name));
    }
    let mut bytes = Vec::new();
    file.take(MAX_IMPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::file(&name, format!("cannot read the file: {e}")))?;
    decode(&bytes, &name)
}

fn too_large(name: &str) -> ImportError {
    ImportError::file(name, format!("is larger than {} MiB", MAX_IMPORT_BYTES >> 20))
        .hint("export fewer objects per file (e.g. one file per cmdlet), or check that this is an export")
}

/// Bytes → text: the size cap, the BOMs, and the first bad UTF-8 byte by line and column.
pub fn decode(bytes: &[u8], name: &str) -> Result<String, ImportError> {
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        return Err(too_large(name));
    }
    let utf16 = |le: bool| -> Result<String, ImportError> {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| {
                let pair = [c[0], *c.get(1).unwrap_or(&0)];
                if le { u16::from_le_bytes(pair) } else { u16::from_be_bytes(pair) }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| ImportError::file(name, "is not valid UTF-16 text"))
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest, name),
        _ => utf8(bytes, name),
    }
}

fn utf8(bytes: &[u8], name: &str) -> Result<String, ImportError> {
    match mailsim_core::diagnostics::utf8_text(bytes, name) {
        Ok(t) => Ok(t.to_string()),
        Err(e) => Err(ImportError {
            file: name.to_string(),
            identity: None,
            at: Some(format!("{}:{}", e.line, e.column)),
            message: e.message,
            hint: Some(
                "save the export as UTF-8: `... | ConvertTo-Json -Depth 5 | Set-Content -Encoding UTF8 file.json`"
                    .into(),
            ),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Property tables (exo-behaviour §15.3).

/// Read-only properties every object carries (§15.3 "common"), plus remoting's own.
const COMMON_READ_ONLY: &[&str] = &[
    "AdminDisplayName",
    "ExchangeVersion",
    "DirectoryObjectVersion",
    "DistinguishedName",
    "ObjectCategory",
    "ObjectClass",
    "WhenChanged",
    "WhenCreated",
    "WhenChangedUTC",
    "WhenCreatedUTC",
    "ExchangeObjectId",
    "OrganizationalUnitRoot",
    "OrganizationId",
    "Id",
    "Guid",
    "OriginatingServer",
    "IsValid",
    "ObjectState",
    "Identity",
    "PSComputerName",
    "PSShowComputerName",
    "RunspaceId",
];

fn read_only(cmdlet: Cmdlet) -> &'static [&'static str] {
    match cmdlet {
        Cmdlet::InboundConnector => &["NameHashGuid", "OrganizationalUnitRootInternal"],
        Cmdlet::OutboundConnector => &["LinkForModifiedConnector"],
        Cmdlet::AcceptedDomain => &[
            "CatchAllRecipientID",
            "Default",
            "EmailOnly",
            "ExternallyManaged",
            "RawAuthenticationType",
            "FederatedOrganizationLink",
            "MailFlowPartner",
            "PendingFederatedAccountNamespace",
            "PendingFederatedDomain",
            "PerimeterDuplicateDetected",
            "IsDefaultFederatedDomain",
            "SmtpDaneStatus",
            "MailFlowRegion",
            "AzureProvisioningRegion",
        ],
        Cmdlet::TransportRule => &[
            "DlpPolicyId",
            "CreatedBy",
            "LastModifiedBy",
            "ManuallyModified",
            "Description",
            "RuleVersion",
            "Size",
            "Conditions",
            "Exceptions",
            "Actions",
            "IsRuleConfigurationSupported",
            "RuleConfigurationUnsupportedReason",
            "RegexSize",
            "ImmutableId",
        ],
    }
}

/// How a property with behaviour is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    List,
    /// A list of address spaces (`smtp:contoso.com;1` → `contoso.com`).
    Domains,
    /// SmartHosts: strings or objects.
    Hosts,
    /// An enumeration: strings as written, integers by §15.4.
    Enum(&'static [(i64, &'static str)]),
    Date,
    /// Anything TOML can hold (a rule's conditions and actions).
    Value,
}

const CONNECTOR_TYPE: &[(i64, &str)] = &[(1, "OnPremises"), (2, "Partner")];
const DOMAIN_TYPE: &[(i64, &str)] = &[(0, "Authoritative"), (1, "ExternalRelay"), (2, "InternalRelay")];
const TLS_SETTINGS: &[(i64, &str)] = &[(1, "EncryptionOnly"), (2, "CertificateValidation"), (4, "DomainValidation")];
const RULE_MODE: &[(i64, &str)] = &[(1, "Audit"), (2, "AuditAndNotify"), (3, "Enforce")];
const USER_SCOPE: &[(i64, &str)] = &[(0, "InOrganization"), (1, "NotInOrganization")];
const FALLBACK: &[(i64, &str)] = &[(0, "Wrap"), (1, "Ignore"), (2, "Reject")];
const RULE_STATE: &[(i64, &str)] = &[(0, "Enabled"), (1, "Disabled")];

fn behaviour(cmdlet: Cmdlet, key: &str, rule_keys: &HashSet<String>) -> Option<Kind> {
    use Kind::*;
    Some(match (cmdlet, key) {
        (Cmdlet::AcceptedDomain, "DomainName") => Text,
        (Cmdlet::AcceptedDomain, "DomainType") => Enum(DOMAIN_TYPE),
        (Cmdlet::AcceptedDomain, "MatchSubDomains") => Bool,
        (Cmdlet::InboundConnector | Cmdlet::OutboundConnector, "Name" | "Comment") => Text,
        (Cmdlet::InboundConnector | Cmdlet::OutboundConnector, "ConnectorType") => Enum(CONNECTOR_TYPE),
        (Cmdlet::InboundConnector | Cmdlet::OutboundConnector, "Enabled" | "CloudServicesMailEnabled") => Bool,
        (Cmdlet::InboundConnector, "SenderDomains") => Domains,
        (Cmdlet::InboundConnector, "SenderIPAddresses" | "AssociatedAcceptedDomains" | "EFSkipIPs") => List,
        (Cmdlet::InboundConnector, "TlsSenderCertificateName") => Text,
        (
            Cmdlet::InboundConnector,
            "RequireTls"
            | "RestrictDomainsToIPAddresses"
            | "RestrictDomainsToCertificate"
            | "TreatMessagesAsInternal"
            | "EFSkipLastIP",
        ) => Bool,
        (Cmdlet::OutboundConnector, "RecipientDomains") => Domains,
        (Cmdlet::OutboundConnector, "SmartHosts") => Hosts,
        (Cmdlet::OutboundConnector, "TlsSettings") => Enum(TLS_SETTINGS),
        (Cmdlet::OutboundConnector, "TlsDomain") => Text,
        (Cmdlet::OutboundConnector, "ValidationRecipients") => List,
        (
            Cmdlet::OutboundConnector,
            "UseMXRecord" | "IsTransportRuleScoped" | "RouteAllMessagesViaOnPremises" | "AllAcceptedDomains",
        ) => Bool,
        (Cmdlet::TransportRule, "Mode") => Enum(RULE_MODE),
        (Cmdlet::TransportRule, "State") => Enum(RULE_STATE),
        (Cmdlet::TransportRule, "FromScope" | "ExceptIfFromScope" | "SentToScope" | "ExceptIfSentToScope") => {
            Enum(USER_SCOPE)
        }
        (Cmdlet::TransportRule, "ApplyHtmlDisclaimerFallbackAction") => Enum(FALLBACK),
        (Cmdlet::TransportRule, "ActivationDate" | "ExpiryDate") => Date,
        (Cmdlet::TransportRule, k) if rule_keys.contains(k) => Value,
        _ => return None,
    })
}

/// Settable properties mailsim gives no behaviour, beyond the loader's inert lists.
fn also_without_behaviour(cmdlet: Cmdlet, key: &str) -> bool {
    matches!(
        (cmdlet, key),
        (Cmdlet::InboundConnector, "ClientHostNames" | "EFUsers") | (Cmdlet::OutboundConnector, "TestMode")
    )
}

fn inert_list(cmdlet: Cmdlet) -> &'static [inert::Inert] {
    match cmdlet {
        Cmdlet::AcceptedDomain => inert::ACCEPTED_DOMAIN,
        Cmdlet::InboundConnector => inert::INBOUND,
        Cmdlet::OutboundConnector => inert::OUTBOUND,
        Cmdlet::TransportRule => inert::RULE,
    }
}

// ---------------------------------------------------------------------------------------------
// Which cmdlet wrote an object.

/// The cmdlet whose export `obj` is, from properties only that cmdlet's objects have.
pub fn detect(obj: &Map<String, Value>) -> Option<Cmdlet> {
    let has = |k: &str| obj.contains_key(k);
    let class = obj.get("ObjectClass").map(|v| v.to_string().to_ascii_lowercase()).unwrap_or_default();
    if class.contains("msexchsmtpinboundconnector") || (has("SenderDomains") && has("RestrictDomainsToIPAddresses")) {
        Some(Cmdlet::InboundConnector)
    } else if class.contains("msexchsmtpoutboundconnector") || (has("RecipientDomains") && has("UseMXRecord")) {
        Some(Cmdlet::OutboundConnector)
    } else if class.contains("msexchacceptedDomain".to_ascii_lowercase().as_str())
        || (has("DomainName") && has("DomainType"))
    {
        Some(Cmdlet::AcceptedDomain)
    } else if class.contains("msexchtransportrule")
        || (has("Priority") && (has("Conditions") || has("Actions") || has("RuleVersion") || has("Mode")))
    {
        Some(Cmdlet::TransportRule)
    } else {
        None
    }
}

fn describe_foreign(obj: &Map<String, Value>) -> String {
    if let Some(class) = obj.get("ObjectClass").and_then(Value::as_array).and_then(|a| a.last()).and_then(Value::as_str)
    {
        return format!("its objects are `{class}`");
    }
    let keys: Vec<&str> = obj.keys().take(5).map(String::as_str).collect();
    format!("its objects have properties {}", keys.join(", "))
}

// ---------------------------------------------------------------------------------------------
// The import.

/// One object on its way to a table.
struct Record {
    cmdlet: Cmdlet,
    file: String,
    index: usize,
    /// JSON pointer of the object in its file (empty for a file that is one object).
    pointer: String,
    identity: Option<String>,
    guid: Option<String>,
    keys: Vec<(String, toml::Value)>,
    comments: Vec<(String, String)>,
}

/// Imports the exports `inputs` (file name, text), in any order and any mix of cmdlets.
pub fn import(inputs: &[(String, String)]) -> Result<Imported, ImportError> {
    let rule_keys: HashSet<String> = load::transport_rule_keys().into_iter().collect();
    let mut records: Vec<Record> = Vec::new();
    let mut seen_guids: HashSet<String> = HashSet::new();
    let mut commented: BTreeMap<String, usize> = BTreeMap::new();
    for (file, text) in inputs {
        let objects = parse_export(file, text)?;
        let mut file_cmdlet: Option<Cmdlet> = None;
        for (index, obj) in objects.iter().enumerate() {
            let pointer = if objects.len() == 1 && !text.trim_start().starts_with('[') {
                String::new()
            } else {
                format!("/{index}")
            };
            let identity = ["Identity", "Name", "DomainName"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_str))
                .map(str::to_string);
            let err = |at: String, message: String| ImportError {
                file: file.clone(),
                identity: identity.clone(),
                at: Some(if at.is_empty() { "/".to_string() } else { at }),
                message,
                hint: None,
            };
            let Some(cmdlet) = detect(obj) else {
                return Err(err(
                    pointer,
                    format!(
                        "not an export of Get-AcceptedDomain, Get-InboundConnector, Get-OutboundConnector or Get-TransportRule: {}",
                        describe_foreign(obj)
                    ),
                )
                .hint("export with `Get-InboundConnector -ResultSize Unlimited | ConvertTo-Json -Depth 5` (and the same for the other three cmdlets)"));
            };
            match file_cmdlet {
                None => file_cmdlet = Some(cmdlet),
                Some(first) if first != cmdlet => {
                    return Err(err(pointer, format!("an object of {} in a file of {}", cmdlet.name(), first.name()))
                        .hint("export each cmdlet to its own file"));
                }
                Some(_) => {}
            }
            let guid = obj.get("Guid").and_then(Value::as_str).map(str::to_string);
            if let Some(g) = &guid
                && !seen_guids.insert(format!("{}:{g}", cmdlet.table()))
            {
                // §15.1: exports run with and without -IncludeTestModeConnectors overlap; keep one.
                continue;
            }
            let record = convert(cmdlet, obj, &pointer, &rule_keys, &mut commented).map_err(|(at, m, h)| {
                let mut e = err(at, m);
                e.hint = h;
                e
            })?;
            records.push(Record {
                cmdlet,
                file: file.clone(),
                index,
                pointer: pointer.clone(),
                identity: identity.clone(),
                guid,
                ..record
            });
        }
    }
    records.sort_by_key(|r| r.cmdlet);
    let toml = write(&records);
    let mut warnings = Vec::new();
    let named = groups(&records);
    if !named.is_empty() {
        warnings.push(format!(
            "the rules name groups whose members are not exported; they are declared empty in [Directory]: {}",
            named.join(", ")
        ));
    }
    if !commented.is_empty() {
        let list: Vec<String> =
            commented.iter().map(|(k, n)| if *n == 1 { k.clone() } else { format!("{k} ({n} objects)") }).collect();
        warnings.push(format!("kept as comments (no behaviour in mailsim): {}", list.join(", ")));
    }
    // What import writes must be a tenant mailsim loads: check it, and name the JSON object.
    match load::load_with_warnings(&toml, "imported tenant") {
        Ok(loaded) => warnings.extend(loaded.warnings.iter().map(ToString::to_string)),
        Err(e) => return Err(loader_error(&records, &e)),
    }
    let mut counts = BTreeMap::new();
    for r in &records {
        *counts.entry(r.cmdlet).or_insert(0) += 1;
    }
    Ok(Imported { toml, warnings, counts })
}

/// The objects of one export: an object, an array of objects, or nothing.
fn parse_export(file: &str, text: &str) -> Result<Vec<Map<String, Value>>, ImportError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| ImportError {
        file: file.to_string(),
        identity: None,
        at: Some(format!("{}:{}", e.line(), e.column())),
        message: {
            let m = e.to_string();
            format!("not valid JSON: {}", m.rsplit_once(" at line ").map_or(m.as_str(), |(head, _)| head))
        },
        hint: Some(
            "export with `... | ConvertTo-Json -Depth 5`; `Format-List` or `Export-Csv` output is not JSON".into(),
        ),
    })?;
    let not_object = |at: String, found: &Value| ImportError {
        file: file.to_string(),
        identity: None,
        at: Some(at),
        message: format!("expected an object (one exported item), found {}", kind_of(found)),
        hint: None,
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Object(o) => Ok(vec![o]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => Ok(o),
                other => Err(not_object(format!("/{i}"), &other)),
            })
            .collect(),
        other => Err(not_object("/".into(), &other)),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

type Failure = (String, String, Option<String>);

/// One object → keys and comments.
fn convert(
    cmdlet: Cmdlet,
    obj: &Map<String, Value>,
    pointer: &str,
    rule_keys: &HashSet<String>,
    commented: &mut BTreeMap<String, usize>,
) -> Result<Record, Failure> {
    let mut keys = Vec::new();
    let mut comments = Vec::new();
    for (key, value) in obj {
        let at = format!("{pointer}/{}", escape_pointer(key));
        if COMMON_READ_ONLY.contains(&key.as_str()) || read_only(cmdlet).contains(&key.as_str()) {
            continue;
        }
        if let Some(kind) = behaviour(cmdlet, key, rule_keys) {
            // A Get-TransportRule export lists every predicate; an unset one is null, false or [].
            if is_unset(value, cmdlet) {
                continue;
            }
            if let Some(v) = to_toml(value, kind, &at)? {
                keys.push((key.clone(), v));
            }
            continue;
        }
        let inert = inert::find(inert_list(cmdlet), key);
        if inert.is_some_and(|i| i.effect == inert::Effect::DisablesRule) {
            // The loader loads such a rule disabled, with a warning naming it (inert.rs).
            if !is_unset(value, cmdlet) {
                keys.push((key.clone(), to_toml(value, Kind::Value, &at)?.unwrap_or(toml::Value::Boolean(true))));
            }
            continue;
        }
        if is_unset(value, cmdlet) {
            continue;
        }
        check_collapsed(value, &at)?;
        let known = inert.is_some() || also_without_behaviour(cmdlet, key);
        let name = if known { key.clone() } else { format!("{key} (unknown to mailsim)") };
        *commented.entry(format!("{}.{name}", cmdlet.table())).or_insert(0) += 1;
        let shown = match (key.as_str(), value.as_i64()) {
            // §15.4 TenantConnectorSource.
            ("ConnectorSource", Some(i)) => match i {
                0 => "\"Default\"".to_string(),
                1 => "\"Migrated\"".to_string(),
                2 => "\"HybridWizard\"".to_string(),
                _ => i.to_string(),
            },
            _ => serde_json::to_string(value).unwrap_or_default(),
        };
        comments.push((key.clone(), shown));
    }
    // Names first, then the rest by name (serde_json keeps no order).
    keys.sort_by_key(|(k, _)| (!matches!(k.as_str(), "Name" | "DomainName"), k.clone()));
    if cmdlet != Cmdlet::AcceptedDomain && !keys.iter().any(|(k, _)| k == "Name") {
        match obj.get("Identity").and_then(Value::as_str) {
            Some(id) => keys.insert(0, ("Name".into(), toml::Value::String(id.to_string()))),
            None => return Err((format!("{pointer}/Name"), "the object has no Name".into(), None)),
        }
    }
    Ok(Record {
        cmdlet,
        file: String::new(),
        index: 0,
        pointer: String::new(),
        identity: None,
        guid: None,
        keys,
        comments,
    })
}

fn is_unset(value: &Value, cmdlet: Cmdlet) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(false) => cmdlet == Cmdlet::TransportRule,
        _ => false,
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `@{Major=14; ...}` or a .NET type name where a value was expected: what `ConvertTo-Json` writes
/// for an object deeper than `-Depth` (2 by default; §15.1).
fn collapsed(s: &str) -> bool {
    let s = s.trim();
    (s.starts_with("@{") && s.ends_with('}'))
        || ((s.starts_with("System.") || s.starts_with("Microsoft.Exchange."))
            && !s.contains(' ')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "._`[],+".contains(c)))
}

fn check_collapsed(value: &Value, at: &str) -> Result<(), Failure> {
    match value {
        Value::String(s) if collapsed(s) => Err((
            at.to_string(),
            format!("`{s}` is an object collapsed to text by ConvertTo-Json's default -Depth 2"),
            Some("export again with `ConvertTo-Json -Depth 5`".into()),
        )),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, v)| check_collapsed(v, &format!("{at}/{i}"))),
        _ => Ok(()),
    }
}

fn to_toml(value: &Value, kind: Kind, at: &str) -> Result<Option<toml::Value>, Failure> {
    check_collapsed(value, at)?;
    let fail = |m: String| -> Failure { (at.to_string(), m, None) };
    let text = |v: &Value, at: &str| -> Result<String, Failure> {
        match v {
            Value::String(s) => Ok(s.trim().to_string()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if *b { "$true" } else { "$false" }.to_string()),
            Value::Object(o) => {
                object_text(o).ok_or_else(|| (at.to_string(), format!("an object without a host or domain: {v}"), None))
            }
            other => Err((at.to_string(), format!("expected a string, found {}", kind_of(other)), None)),
        }
    };
    let list = |v: &Value| -> Result<Vec<String>, Failure> {
        match v {
            Value::Array(items) => items.iter().enumerate().map(|(i, item)| text(item, &format!("{at}/{i}"))).collect(),
            Value::Null => Ok(Vec::new()),
            other => Ok(vec![text(other, at)?]),
        }
    };
    let strings = |l: Vec<String>| toml::Value::Array(l.into_iter().map(toml::Value::String).collect());
    Ok(Some(match kind {
        Kind::Text => match value {
            Value::Null => return Ok(None),
            v => toml::Value::String(text(v, at)?),
        },
        Kind::Bool => match value {
            Value::Bool(b) => toml::Value::Boolean(*b),
            Value::String(s) => match s.trim().trim_start_matches('$').to_ascii_lowercase().as_str() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => return Err(fail(format!("`{s}` is not a boolean"))),
            },
            Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                toml::Value::Boolean(n.as_i64() == Some(1))
            }
            Value::Null => return Ok(None),
            other => return Err(fail(format!("expected a boolean, found {}", kind_of(other)))),
        },
        Kind::List => strings(list(value)?),
        Kind::Domains => strings(list(value)?.iter().map(|s| address_space(s)).collect()),
        Kind::Hosts => strings(list(value)?),
        Kind::Enum(names) => match value {
            Value::Null => return Ok(None),
            Value::Number(n) => {
                let i = n.as_i64().unwrap_or(-1);
                match names.iter().find(|(v, _)| *v == i) {
                    Some((_, name)) => toml::Value::String((*name).to_string()),
                    None => {
                        let known: Vec<String> = names.iter().map(|(v, n)| format!("{n}={v}")).collect();
                        return Err((
                            at.to_string(),
                            format!("{i} is not a known value ({})", known.join(", ")),
                            Some("export with strings: PowerShell 7 `ConvertTo-Json -Depth 5 -EnumsAsStrings`".into()),
                        ));
                    }
                }
            }
            Value::Object(o) if o.contains_key("Value") || o.contains_key("value") => {
                // PS 5.1's {"value":1,"Value":"Unknown"} (§15.2): the string twin names it.
                match o.get("Value").filter(|v| v.is_string()).or_else(|| o.get("value")) {
                    Some(v) => return to_toml(v, kind, at),
                    None => return Err(fail("an enumeration object without a value".into())),
                }
            }
            v => toml::Value::String(text(v, at)?),
        },
        Kind::Date => match value {
            Value::Null => return Ok(None),
            v => toml::Value::String(date(&text(v, at)?).ok_or_else(|| fail(format!("`{v}` is not a date")))?),
        },
        Kind::Value => json_to_toml(value, at)?,
    }))
}

/// The host or domain an exported object stands for (SmartHost, SmtpDomainWithSubdomains).
fn object_text(o: &Map<String, Value>) -> Option<String> {
    for key in ["Address", "Domain", "HostnameString", "Hostname", "SmartHostString", "Value"] {
        match o.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {
                let sub = o.get("IncludeSubDomains").and_then(Value::as_bool) == Some(true);
                return Some(if sub && !s.starts_with('*') { format!("*.{s}") } else { s.clone() });
            }
            Some(Value::Object(inner)) => {
                if let Some(s) = object_text(inner) {
                    return Some(s);
                }
            }
            _ => {}
        }
    }
    None
}

/// `smtp:contoso.com;1` → `contoso.com` (§15.2).
fn address_space(s: &str) -> String {
    let s = s.trim();
    let s = match s.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("smtp") => rest,
        _ => s,
    };
    match s.rsplit_once(';') {
        Some((d, cost)) if cost.chars().all(|c| c.is_ascii_digit()) => d.to_string(),
        _ => s.to_string(),
    }
}

/// `/Date(1772500523000)/` (PS 5.1, with an optional `+0100` offset that does not move the instant)
/// or an ISO 8601 date → `2026-03-03T01:15:23.000Z`.
pub fn date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let digits_end =
            inner.char_indices().skip(1).find(|(_, c)| *c == '+' || *c == '-').map_or(inner.len(), |(i, _)| i);
        let ms: i64 = inner[..digits_end].parse().ok()?;
        return Some(Timestamp::from_millis(ms).iso8601());
    }
    mailsim_core::tenant::transport_rule::parse_date(s).map(Timestamp::iso8601)
}

fn json_to_toml(value: &Value, at: &str) -> Result<toml::Value, Failure> {
    Ok(match value {
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_null())
                .map(|(i, v)| match v {
                    Value::Object(o) => object_text(o).map(toml::Value::String).ok_or_else(|| {
                        (format!("{at}/{i}"), format!("an object where a value was expected: {v}"), None)
                    }),
                    v => json_to_toml(v, &format!("{at}/{i}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => match object_text(o) {
            Some(s) => toml::Value::String(s),
            None => return Err((at.to_string(), format!("an object where a value was expected: {value}"), None)),
        },
        Value::Null => toml::Value::String(String::new()),
    })
}

// ---------------------------------------------------------------------------------------------
// Writing.

fn write(records: &[Record]) -> String {
    let mut out = String::from(
        "# Tenant written by `mailsim import` from Exchange Online exports (docs/import-and-lint.md).\n\
         # Properties without behaviour in mailsim are kept as comments; read-only ones are dropped.\n",
    );
    for r in records {
        out.push('\n');
        out.push_str(&format!("# From {} of {}", r.file, r.cmdlet.name()));
        out.push_str(&format!(" (object {})", r.index + 1));
        if let Some(id) = &r.identity {
            out.push_str(&format!(", Identity {}", one_line(id)));
        }
        if let Some(g) = &r.guid {
            out.push_str(&format!(", Guid {}", one_line(g)));
        }
        out.push('\n');
        out.push_str(&format!("[[{}]]\n", r.cmdlet.table()));
        for (k, v) in &r.keys {
            out.push_str(&format!("{k} = {v}\n"));
        }
        if !r.comments.is_empty() {
            out.push_str("# Without behaviour in mailsim:\n");
            for (k, v) in &r.comments {
                out.push_str(&format!("#   {k} = {}\n", one_line(v)));
            }
        }
    }
    let groups = groups(records);
    if !groups.is_empty() {
        out.push_str(
            "\n# Groups the rules name. Get-DistributionGroup is not imported: add each group's members\n\
             # (Get-DistributionGroupMember), or the membership conditions match nobody.\n[Directory]\n",
        );
        for g in groups {
            out.push_str(&format!(
                "\n[[Directory.DistributionGroup]]\nPrimarySmtpAddress = {}\nMembers = []\n",
                toml::Value::String(g)
            ));
        }
    }
    out
}

/// The groups the rules name in `*MemberOf` conditions: `Get-DistributionGroup` is not among the
/// exports, so each is declared without members for the admin to fill in.
fn groups(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records.iter().filter(|r| r.cmdlet == Cmdlet::TransportRule) {
        for (k, v) in &r.keys {
            if !k.ends_with("MemberOf") {
                continue;
            }
            let values = match v {
                toml::Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                toml::Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            };
            for g in values {
                if !out.iter().any(|o| o.eq_ignore_ascii_case(&g)) {
                    out.push(g);
                }
            }
        }
    }
    out
}

fn one_line(s: &str) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() > 200 { flat.chars().take(200).chain(['…']).collect() } else { flat }
}

/// A loader refusal of the written text, named against the JSON object it came from.
fn loader_error(records: &[Record], e: &load::ConfigError) -> ImportError {
    let origin = e.field.split_once('.').map_or(e.field.as_str(), |(t, _)| t);
    let found = origin.split_once('[').and_then(|(table, n)| {
        let n: usize = n.trim_end_matches(']').parse().ok()?;
        records.iter().filter(|r| r.cmdlet.table() == table).nth(n.checked_sub(1)?)
    });
    let property = e.field.split_once('.').map(|(_, p)| p.to_string());
    match found {
        Some(r) => {
            // §15.1: Get-OutboundConnector leaves out rule-scoped (and test-mode) connectors unless
            // asked, so a rule naming a connector the export lacks is an export gap (lint L17).
            let hint = if property.as_deref() == Some("RouteMessageOutboundConnector") {
                Some("if the connector exists in the tenant, the export left it out: export `Get-OutboundConnector -IsTransportRuleScoped:$true` and `-IncludeTestModeConnectors:$true` too and import both files (exo-behaviour §15.1)".to_string())
            } else {
                e.hint.clone()
            };
            ImportError {
                file: r.file.clone(),
                identity: r.identity.clone(),
                at: property.map(|p| format!("{}/{p}", r.pointer)),
                message: format!("mailsim refuses this value: {}", e.message),
                hint,
            }
        }
        None => ImportError::file("imported tenant", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_exports_write_them() {
        assert_eq!(address_space("smtp:*;1"), "*");
        assert_eq!(address_space("SMTP:contoso.com;10"), "contoso.com");
        assert_eq!(address_space("contoso.com"), "contoso.com");
        assert_eq!(date("/Date(1772500523000)/").as_deref(), Some("2026-03-03T01:15:23.000Z"));
        assert_eq!(date("/Date(1772500523000+0100)/").as_deref(), Some("2026-03-03T01:15:23.000Z"));
        assert_eq!(date("2026-07-23T22:55:13.0000000Z").as_deref(), Some("2026-07-23T22:55:13.000Z"));
        assert!(collapsed("@{Major=14; Minor=0}"));
        assert!(collapsed("System.Object[]"));
        assert!(collapsed("Microsoft.Exchange.Data.MultiValuedProperty`1[System.String]"));
        assert!(!collapsed("mail.contoso.test"));
        assert!(!collapsed("System is down"));
    }

    #[test]
    fn inputs_that_are_not_exports_are_refused_without_panic() {
        for (bytes, fragment) in [
            (&b"\xff\xfe{\x00"[..], "not valid JSON"),
            (&b"{\"a\": 1}"[..], "not an export of"),
            (&b"[1, 2]"[..], "expected an object"),
            (&b"{\"a\": \xc3\x28}"[..], "UTF-8"),
            (&b"{ \"DomainName\": "[..], "not valid JSON"),
        ] {
            let e = decode(bytes, "x.json").and_then(|t| import(&[("x.json".into(), t)]).map(|_| ()));
            let e = e.unwrap_err().to_string();
            assert!(e.contains(fragment), "{e}");
        }
    }
}
