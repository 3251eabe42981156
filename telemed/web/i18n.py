"""Every text the pages show, in Danish (the default) and English, and the choice of language.

One table: a key maps to its Danish and English text. Templates call `t("key")`; the scripts
get the keys they need as a JSON block in the page, so no text is written in two places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

LANGUAGES: Final = ("da", "en")
DEFAULT: Final = "da"
COOKIE: Final = "telemed_lang"

# key: (Danish, English)
TEXT: Final[Mapping[str, tuple[str, str]]] = {
    # layout
    "app.name": ("Telemed", "Telemed"),
    "app.console": ("Specialistkonsol", "Specialist console"),
    "app.nurse": ("Sygeplejerske", "Nurse"),
    "app.skip": ("Spring til indhold", "Skip to content"),
    "app.language": ("Sprog", "Language"),
    "app.lang.da": ("Dansk", "Danish"),
    "app.lang.en": ("Engelsk", "English"),
    "app.signed_in_as": ("Logget ind som {name}", "Signed in as {name}"),
    "app.sign_out": ("Log ud", "Sign out"),
    "app.back": ("Tilbage", "Back"),
    "app.loading": ("Henter …", "Loading …"),
    "app.saved": ("Gemt", "Saved"),
    "app.error": ("Noget gik galt: {detail}", "Something went wrong: {detail}"),
    "app.offline": (
        "Forbindelsen til serveren er afbrudt; prøver igen …",
        "The connection to the server is lost; retrying …",
    ),
    "app.live": ("Opdateres direkte", "Updating live"),
    "app.not_found": (
        "Findes ikke, eller du har ikke adgang.",
        "Not found, or you have no access.",
    ),
    "app.forbidden": ("Du har ikke adgang til denne side.", "You have no access to this page."),
    "app.none": ("Ingen", "None"),
    "app.cancel": ("Annuller", "Cancel"),
    "app.save": ("Gem", "Save"),
    # sign in
    "login.title": ("Log ind", "Sign in"),
    "login.username": ("Brugernavn", "Username"),
    "login.password": ("Adgangskode", "Password"),
    "login.submit": ("Log ind", "Sign in"),
    "login.failed": ("Forkert brugernavn eller adgangskode.", "Wrong username or password."),
    "login.missing": ("Skriv brugernavn og adgangskode.", "Enter username and password."),
    # patients
    "patients.title": ("Patienter", "Patients"),
    "patients.none": ("Ingen patienter i din organisations ansvar.", "No patients in your care."),
    "patients.name": ("Navn", "Name"),
    "patients.pseudonym": ("Pseudonym", "Pseudonym"),
    "patients.born": ("Født", "Born"),
    "patients.program": ("Forløb", "Program"),
    "patients.responsible": ("Ansvarlig", "Responsible"),
    "program.copd": ("KOL", "COPD"),
    "program.ak": ("AK-behandling", "Anticoagulation"),
    # metrics
    "metric.spo2": ("Iltmætning (SpO2)", "Oxygen saturation (SpO2)"),
    "metric.pulse": ("Puls", "Pulse"),
    "metric.resp_rate": ("Respirationsfrekvens", "Respiratory rate"),
    "metric.fev1": ("FEV1", "FEV1"),
    "metric.pef": ("Peak flow (PEF)", "Peak flow (PEF)"),
    "metric.weight": ("Vægt", "Weight"),
    "metric.temperature": ("Temperatur", "Temperature"),
    "metric.cat": ("CAT-score", "CAT score"),
    "metric.mrc": ("MRC-åndenød", "MRC dyspnoea"),
    "metric.inr": ("INR", "INR"),
    # patient page (console)
    "patient.title": ("Patient {name}", "Patient {name}"),
    "patient.period": ("Periode", "Period"),
    "patient.days": ("{n} dage", "{n} days"),
    "patient.no_readings": ("Ingen målinger i perioden.", "No readings in this period."),
    "patient.latest": ("Seneste: {value} ({at})", "Latest: {value} ({at})"),
    "patient.plot_label": (
        "{metric} de seneste {n} dage: {count} målinger, seneste {value}",
        "{metric} over the last {n} days: {count} readings, latest {value}",
    ),
    "patient.avg": ("gennemsnit", "average"),
    "patient.range": ("min–maks", "min–max"),
    "patient.value": ("måling", "reading"),
    "patient.alert_marker": ("alarm", "alert"),
    "patient.ttr": ("Tid i terapeutisk interval (TTR)", "Time in therapeutic range (TTR)"),
    "patient.ttr_value": ("{value} % over {days} dage", "{value} % over {days} days"),
    "patient.ttr_none": ("Kan ikke beregnes: {reason}", "Not calculable: {reason}"),
    "patient.therapeutic": ("Terapeutisk interval {low}–{high}", "Therapeutic range {low}–{high}"),
    "patient.thresholds": ("Grænseværdier", "Thresholds"),
    "patient.thresholds_edit": ("Ret grænseværdier", "Edit thresholds"),
    "patient.threshold_red_low": ("Rød under", "Red below"),
    "patient.threshold_yellow_low": ("Gul under", "Yellow below"),
    "patient.threshold_yellow_high": ("Gul over", "Yellow above"),
    "patient.threshold_red_high": ("Rød over", "Red above"),
    "patient.threshold_saved": ("Grænseværdierne er gemt.", "The thresholds are saved."),
    "patient.alerts": ("Alarmer", "Alerts"),
    "patient.wounds": ("Sårsager", "Wound cases"),
    # triage queue
    "queue.title": ("Triage", "Triage"),
    "queue.empty": ("Ingen åbne alarmer eller sårsager.", "No open alerts or wound cases."),
    "queue.alerts": ("Alarmer", "Alerts"),
    "queue.wounds": ("Sårsager", "Wound cases"),
    "queue.updated": ("Køen er opdateret", "The queue is updated"),
    "severity.red": ("Rød", "Red"),
    "severity.yellow": ("Gul", "Yellow"),
    "severity.blue": ("Blå", "Blue"),
    "state.open": ("Åben", "Open"),
    "state.acknowledged": ("Kvitteret", "Acknowledged"),
    "state.resolved": ("Afsluttet", "Resolved"),
    "state.submitted": ("Indsendt", "Submitted"),
    "state.answered": ("Besvaret", "Answered"),
    "state.read": ("Læst", "Read"),
    "state.closed": ("Lukket", "Closed"),
    "alert.rule": ("Regel", "Rule"),
    "alert.value": ("Værdi", "Value"),
    "alert.since": ("Siden", "Since"),
    "alert.count": ("Antal", "Count"),
    "alert.note": ("Note", "Note"),
    "alert.ack": ("Kvittér", "Acknowledge"),
    "alert.resolve": ("Afslut", "Resolve"),
    "alert.open_patient": ("Åbn patient", "Open patient"),
    "alert.done": ("Alarmen er opdateret.", "The alert is updated."),
    # wound cases
    "wound.case": ("Sårsag", "Wound case"),
    "wound.new": ("Ny sårsag", "New wound case"),
    "wound.type": ("Sårtype", "Wound type"),
    "wound.location": ("Placering", "Location"),
    "wound.submitted": ("Indsendt", "Submitted"),
    "wound.due": ("Svar senest", "Answer due"),
    "wound.by": ("Af", "By"),
    "wound.photos": ("Fotos", "Photos"),
    "wound.photo_alt": ("Sårfoto taget {at}", "Wound photo taken {at}"),
    "wound.earlier": ("Tidligere fotos af samme sår", "Earlier photos of the same wound"),
    "wound.compare": ("Sammenlign", "Compare"),
    "wound.zoom": ("Forstør", "Zoom"),
    "wound.close": ("Luk", "Close"),
    "wound.size": ("Størrelse over tid", "Size over time"),
    "wound.area": ("Areal (cm²)", "Area (cm²)"),
    "wound.length": ("Længde (cm)", "Length (cm)"),
    "wound.width": ("Bredde (cm)", "Width (cm)"),
    "wound.depth": ("Dybde (cm)", "Depth (cm)"),
    "wound.tissue": ("Vævstype", "Tissue"),
    "wound.exudate": ("Ekssudat", "Exudate"),
    "wound.exudate_amount": ("Mængde ekssudat", "Exudate amount"),
    "wound.exudate_type": ("Type ekssudat", "Exudate type"),
    "wound.infection": ("Tegn på infektion", "Signs of infection"),
    "wound.pain": ("Smerte (0–10)", "Pain (0–10)"),
    "wound.odour": ("Lugt", "Odour"),
    "wound.notes": ("Bemærkninger", "Notes"),
    "wound.observations": ("Observationer", "Observations"),
    "wound.instructions": ("Instruktioner", "Instructions"),
    "wound.no_instructions": ("Endnu ingen instruktioner.", "No instructions yet."),
    "wound.write": ("Skriv instruktion", "Write instructions"),
    "wound.text": ("Instruktion", "Instruction"),
    "wound.dressing": ("Forbinding", "Dressing"),
    "wound.frequency": ("Skiftes hver", "Change every"),
    "wound.next_review": ("Næste vurdering", "Next review"),
    "wound.send": ("Send instruktion", "Send instructions"),
    "wound.sent": ("Instruktionen er sendt.", "The instructions are sent."),
    "wound.confirm_read": ("Bekræft at jeg har læst", "Confirm I have read this"),
    "wound.read_by": ("Læst {at}", "Read {at}"),
    "wound.take_photos": ("Tag fotos", "Take photos"),
    "wound.photos_hint": (
        "JPEG, PNG, WebP eller HEIC. Flere fotos er tilladt.",
        "JPEG, PNG, WebP or HEIC. Several photos are allowed.",
    ),
    "wound.submit": ("Send sårsag", "Send wound case"),
    "wound.uploading": ("Sender … {pct} %", "Uploading … {pct} %"),
    "wound.created": ("Sårsagen er sendt.", "The wound case is sent."),
    "wound.refused": ("Sårsagen blev afvist: {detail}", "The wound case was refused: {detail}"),
    "wound.open_cases": ("Mine åbne sårsager", "My open wound cases"),
    "wound.no_cases": ("Ingen åbne sårsager.", "No open wound cases."),
    "wound.no_photos": ("Vælg mindst ét foto.", "Choose at least one photo."),
    "yes": ("Ja", "Yes"),
    "no": ("Nej", "No"),
    # nurse
    "nurse.title": ("Mine patienter", "My patients"),
    "nurse.pick": ("Vælg patient", "Pick a patient"),
    "nurse.reading": ("Indtast måling", "Enter a reading"),
    "nurse.measured_at": ("Målt", "Measured"),
    "nurse.metric": ("Måling", "Measurement"),
    "nurse.value": ("Værdi", "Value"),
    "nurse.note": ("Note", "Note"),
    "nurse.save_reading": ("Gem måling", "Save reading"),
    "nurse.reading_saved": ("Målingen er gemt.", "The reading is saved."),
}


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: `?lang=` first, then the cookie it set, then the browser's list."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    for tag in accepted(accept_language or ""):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
        if primary in ("nb", "nn", "no", "sv"):
            # A Scandinavian reader is better served by Danish than by English.
            return "da"
    return DEFAULT


def accepted(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first; q=0 means 'not this one'."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or tag == "*":
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            weighted.append((-q, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def translate(lang: str, key: str, **values: object) -> str:
    text = TEXT[key][LANGUAGES.index(lang)]
    return text.format(**values) if values else text


def translator(lang: str) -> Callable[..., str]:
    def t(key: str, **values: object) -> str:
        return translate(lang, key, **values)

    return t


def for_script(lang: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The texts a page's script needs, by key."""
    index = LANGUAGES.index(lang)
    return {k: v[index] for k, v in TEXT.items() if k.startswith(prefixes)}
