"""Texts of the clinical forms: a refusal by its stable code (`error.<code>`, docs/errors.md),
the thresholds' removal control, the dose read-back and the dose in tablets. Part of the one
translation table (app.web.texts.TEXT)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Placeholders an error text may use: {min} {max} {unit} {scale} {typed}, from the field's spec.
ERROR_TEXT: Final[Mapping[str, tuple[str, str]]] = {
    # numbers as typed (the forms' reader) and as the API checks them
    "error.required": ("Skriv en værdi.", "Enter a value."),
    "error.not_a_number": (
        "Skriv et tal, fx 17,5. Teksten kan ikke læses som et tal.",
        "Enter a number, e.g. 17.5. The text cannot be read as a number.",
    ),
    "error.wrong_unit": (
        "Skriv tallet i {unit}, feltets egen enhed – ikke i »{typed}«.",
        "Enter the number in {unit}, the field's own unit – not in “{typed}”.",
    ),
    "error.no_unit": (
        "Skriv kun tallet, uden enhed (ikke »{typed}«).",
        "Enter the number alone, without a unit (not “{typed}”).",
    ),
    "error.wrong_scale": (
        "Skriv et tal på skalaen 0–{scale}, fx 5 eller 5/{scale}.",
        "Enter a number on the 0–{scale} scale, e.g. 5 or 5/{scale}.",
    ),
    "error.ambiguous_number": (
        "Tallet kan læses på to måder. Skriv det uden tusindtalsadskiller og med komma før "
        "decimalerne, fx 17,5 eller 1750.",
        "The number can be read two ways. Write it without a thousands separator and with one "
        "decimal sign, e.g. 17.5 or 1750.",
    ),
    "error.out_of_range": (
        "Skriv et tal mellem {min} og {max} {unit}.",
        "Enter a number between {min} and {max} {unit}.",
    ),
    "error.not_whole": ("Skriv et helt tal.", "Enter a whole number."),
    "error.null_not_allowed": (
        "Værdien mangler. Skriv et tal, eller lad feltet stå tomt.",
        "The value is missing. Enter a number, or leave the field empty.",
    ),
    "error.nul_character": (
        "Teksten indeholder et usynligt tegn (NUL), som ikke kan gemmes. Skriv den igen.",
        "The text holds an invisible character (NUL) that cannot be stored. Type it again.",
    ),
    "error.too_long": ("Teksten er for lang.", "The text is too long."),
    "error.invalid_choice": ("Vælg en af mulighederne.", "Choose one of the options."),
    "error.unknown_field": (
        "Siden sendte et felt, som serveren ikke kender. Hent siden igen.",
        "The page sent a field the server does not know. Reload the page.",
    ),
    "error.wrong_type": (
        "Værdien har en form, som serveren ikke kan bruge. Hent siden igen.",
        "The value has a form the server cannot use. Reload the page.",
    ),
    "error.invalid": ("Værdien kan ikke bruges.", "The value cannot be used."),
    "error.server": (
        "Serveren kunne ikke gøre det færdigt; intet er gemt. Prøv igen – fejlen er logget.",
        "The server could not finish it; nothing was saved. Try again – the error is logged.",
    ),
    "error.conflict": (
        "Det kan ikke gøres nu; en anden kan have ændret det imens. Hent siden igen.",
        "This cannot be done now; someone may have changed it meanwhile. Reload the page.",
    ),
    "error.not_found": (
        "Findes ikke, eller du har ikke adgang.",
        "Not found, or you have no access.",
    ),
    "error.not_multipart": (
        "Siden sendte sårsagen i en form, serveren ikke tager imod. Hent siden igen.",
        "The page sent the wound case in a form the server does not take. Reload the page.",
    ),
    "error.in_future": ("Tidspunktet ligger i fremtiden.", "The time is in the future."),
    "error.unknown_metric": ("Målingen kendes ikke.", "Unknown measurement."),
    # thresholds
    "error.value_required": (
        "Skriv en grænse. Vil du fjerne grænsen, så brug »Fjern grænse« og skriv hvorfor.",
        "Enter a limit. To remove the limit, use “Remove limit” and say why.",
    ),
    "error.removal_reason_required": (
        "Skriv hvorfor grænsen fjernes.",
        "Say why the limit is removed.",
    ),
    "error.bands_out_of_order": (
        "Grænserne skal ligge i rækkefølgen rød under < gul under < gul over < rød over.",
        "Limits must lie in the order red below < yellow below < yellow above < red above.",
    ),
    "error.outside_plausible_range": (
        "Grænsen skal ligge inden for det målbare område {min}–{max} {unit}.",
        "The limit must lie within the measurable range {min}–{max} {unit}.",
    ),
    "error.not_removable": (
        "Denne værdi kan ikke fjernes, kun ændres eller sættes tilbage til standard.",
        "This value cannot be removed, only changed or reset to the default.",
    ),
    "error.no_limit_left": (
        "Det er reglens sidste grænse. Slå hellere reglen fra med en begrundelse.",
        "It is the rule's last limit. Switch the rule off instead, with a reason.",
    ),
    "error.unknown_rule": ("Reglen findes ikke for patienten.", "No such rule for the patient."),
    "error.reset_takes_no_value": (
        "En nulstilling tager ingen værdi.",
        "A reset takes no value.",
    ),
    "error.reason_required": ("Skriv en begrundelse.", "Give a reason."),
    # doses
    "error.dose_confirmation_required": (
        "Dosis skal læses op og bekræftes, før den sendes.",
        "The dose must be read back and confirmed before it is sent.",
    ),
    "error.dose_confirmation_mismatch": (
        "Oplæsningen passer ikke til den dosis, der sendes, eller den nuværende dosis er "
        "ændret imens. Læs op igen.",
        "The read-back does not match the dose being sent, or the current dose changed "
        "meanwhile. Read back again.",
    ),
    "error.unknown_product": ("Præparatet kendes ikke.", "Unknown product."),
    "error.past_date": ("Datoen ligger i fortiden.", "The date is in the past."),
    "error.wrong_program": (
        "Feltet hører til et andet forløb end alarmens.",
        "The field belongs to another program than the alert's.",
    ),
    # uploads
    "error.empty": ("filen er tom", "the file is empty"),
    "error.too_large": (
        "for stor – send færre eller mindre fotos",
        "too large – send fewer or smaller photos",
    ),
    "error.unsupported_format": (
        "filen er ikke et JPEG-, PNG-, WebP- eller HEIC-billede",
        "the file is not a JPEG, PNG, WebP or HEIC image",
    ),
    "error.too_many_pixels": ("billedet har for mange pixels", "the image has too many pixels"),
    "error.corrupt": (
        "billedet er beskadiget og kan ikke åbnes",
        "the image is damaged and cannot be opened",
    ),
    "error.malformed": (
        "sendingen blev afbrudt eller er ufuldstændig; prøv igen",
        "the upload was cut off or is incomplete; try again",
    ),
    "error.not_json": (
        "siden sendte data, der ikke kan læses. Hent siden igen.",
        "the page sent data that cannot be read. Reload the page.",
    ),
    "error.unknown_part": (
        "siden sendte en del, som serveren ikke kender. Hent siden igen.",
        "the page sent a part the server does not know. Reload the page.",
    ),
    "error.duplicate_part": ("en del blev sendt to gange", "a part was sent twice"),
    # wound observations: rules across fields (wounds.observations)
    "error.required_for_pressure_ulcer": (
        "Vælg kategori for tryksåret.",
        "Choose the pressure ulcer's category.",
    ),
    "error.only_for_pressure_ulcer": (
        "Kategori hører kun til tryksår.",
        "A category belongs to pressure ulcers only.",
    ),
    "error.category_1_is_intact_skin": (
        "Et kategori 1-tryksår har hel hud og ingen dybde.",
        "A category 1 pressure ulcer has intact skin and no depth.",
    ),
    "error.category_excludes_slough_and_necrosis": (
        "Fibrin eller nekrose betyder kategori 3, 4 eller ikke klassificerbar.",
        "Slough or necrosis means category 3, 4 or unstageable.",
    ),
    "error.unstageable_needs_slough_or_necrosis": (
        "Ikke klassificerbar betyder, at bunden er dækket af fibrin eller nekrose.",
        "Unstageable means the base is covered by slough or necrosis.",
    ),
    "error.length_and_width_together": (
        "Mål både længde og bredde, eller ingen af dem.",
        "Measure both length and width, or neither.",
    ),
    "error.tissue_sum": (
        "Vævstyperne skal tilsammen give 100 %.",
        "The tissue shares must add up to 100 %.",
    ),
    "error.type_without_exudate": (
        "Intet ekssudat kan ikke have en type.",
        "No exudate cannot have a type.",
    ),
    "error.purulent_without_exudate": (
        "Purulent ekssudat er valgt, men mængden er »intet«.",
        "Purulent exudate is chosen, but the amount is “none”.",
    ),
    "error.odour_contradiction": (
        "Lugt er valgt som infektionstegn, men lugt er angivet som »ingen«.",
        "Odour is chosen as a sign of infection, but odour is recorded as “none”.",
    ),
    "error.intact_excludes_findings": (
        "Hel hud kan ikke have andre fund.",
        "Intact skin cannot have other findings.",
    ),
    "error.not_in_future": ("Datoen ligger i fremtiden.", "The date is in the future."),
    "error.side_required": ("Vælg venstre eller højre side.", "Choose the left or right side."),
    "error.midline_site": ("Dette sted er i midtlinjen.", "This site is in the midline."),
    "error.diabetic_foot_on_foot": (
        "Et diabetisk fodsår sidder på foden.",
        "A diabetic foot ulcer is on the foot.",
    ),
    "error.venous_ulcer_on_lower_leg": (
        "Et venøst bensår sidder på underbenet eller anklen.",
        "A venous leg ulcer is on the lower leg or ankle.",
    ),
    "error.wound_choice": (
        "Vælg et kendt sår eller beskriv et nyt.",
        "Choose a known wound or describe a new one.",
    ),
    "error.type_differs": (
        "Sårtypen skal være den samme som det nye sårs.",
        "The wound type must be the new wound's.",
    ),
    "error.consent_required": (
        "Patienten skal give samtykke til fotos i journalen.",
        "The patient must consent to photos in the record.",
    ),
    "error.already_registered": (
        "Der findes allerede en patient med dette CPR-nummer.",
        "A patient with this CPR number exists.",
    ),
    "error.invalid_utf8": (
        "Teksten indeholder tegn, der ikke kan læses.",
        "The text holds characters that cannot be read.",
    ),
    "error.too_deep": ("Forespørgslen er for dybt indlejret.", "The request is nested too deeply."),
    "error.date_out_of_range": (
        "Datoen skal ligge mellem {min} og {max}.",
        "The date must lie between {min} and {max}.",
    ),
    "error.no_route": (
        "Ingen afdeling tager imod denne sårtype for patienten. Kontakt administratoren.",
        "No department takes this wound type for the patient. Contact the administrator.",
    ),
}

FORM_TEXT: Final[Mapping[str, tuple[str, str]]] = {
    **ERROR_TEXT,
    # thresholds: removing a limit on purpose, and what was stored
    "patient.threshold_remove": ("Fjern grænse", "Remove limit"),
    "patient.threshold_remove_label": (
        "Fjern grænsen {field} for {metric}",
        "Remove the limit {field} for {metric}",
    ),
    "patient.threshold_unconfirmed": (
        "Fjernet uden bekræftelse – måske en tastefejl. Skriv en grænse, eller bekræft.",
        "Removed without confirmation – perhaps a typo. Enter a limit, or confirm.",
    ),
    "patient.threshold_confirm_removal": ("Bekræft fjernelse", "Confirm removal"),
    "patient.threshold_confirm_removal_label": (
        "Bekræft at grænsen {field} for {metric} er fjernet",
        "Confirm that the limit {field} for {metric} is removed",
    ),
    "patient.threshold_remove_title": ("Fjern en grænse", "Remove a limit"),
    "patient.threshold_remove_consequence": (
        "Fjernes grænsen »{field} {value}« for {metric}, giver {metric} ingen {colour} alarm "
        "{side} hos denne patient, før en ny grænse sættes.",
        "If the limit “{field} {value}” for {metric} is removed, {metric} raises no {colour} "
        "alert {side} for this patient until a new limit is set.",
    ),
    "patient.threshold_colour_red": ("rød", "red"),
    "patient.threshold_colour_yellow": ("gul", "yellow"),
    "patient.threshold_side_low": ("for lave værdier", "for low values"),
    "patient.threshold_side_high": ("for høje værdier", "for high values"),
    "patient.threshold_remove_reason": ("Hvorfor fjernes grænsen?", "Why is the limit removed?"),
    "patient.threshold_remove_confirm": ("Fjern grænsen", "Remove the limit"),
    "patient.threshold_removed": (
        "Grænsen er fjernet. Gemt hos serveren: {stored}.",
        "The limit is removed. Stored on the server: {stored}.",
    ),
    "patient.threshold_saved_values": (
        "Grænseværdierne er gemt. Gemt hos serveren: {stored}.",
        "The thresholds are saved. Stored on the server: {stored}.",
    ),
    "patient.threshold_none": ("ingen grænse", "no limit"),
    "patient.threshold_fix": (
        "Ret de markerede felter; intet er gemt.",
        "Correct the marked fields; nothing was saved.",
    ),
    "patient.threshold_range": (
        "Målbart område: {min}–{max} {unit}",
        "Measurable: {min}–{max} {unit}",
    ),
    "nurse.reading_fix": (
        "Ret de markerede felter; målingen er ikke gemt.",
        "Correct the marked fields; the reading was not saved.",
    ),
    "nurse.reading_none": ("Skriv mindst én måling.", "Enter at least one measurement."),
    "wound.fix": (
        "Ret de markerede felter; sårsagen er ikke sendt.",
        "Correct the marked fields; the wound case was not sent.",
    ),
    "alert.instruction_fix": (
        "Ret de markerede felter; instruksen er ikke sendt.",
        "Correct the marked fields; the instruction was not sent.",
    ),
    # the dose: read-back before sending, and in tablets
    "dose.label": ("Ny ugedosis (mg)", "New weekly dose (mg)"),
    "dose.product": ("Præparat: {product}", "Product: {product}"),
    "dose.readback_title": ("Læs dosis op før den sendes", "Read the dose back before sending"),
    "dose.readback_current": ("Nuværende ugedosis: {dose}", "Current weekly dose: {dose}"),
    "dose.readback_no_current": (
        "Nuværende ugedosis: ingen på journalen",
        "Current weekly dose: none on record",
    ),
    "dose.readback_new": ("Ny ugedosis: {dose}", "New weekly dose: {dose}"),
    "dose.readback_change": ("Ændring: {change} %", "Change: {change} %"),
    "dose.reason.outside_usual_range": (
        "Uden for det sædvanlige interval {low}–{high} mg om ugen.",
        "Outside the usual range of {low}–{high} mg a week.",
    ),
    "dose.reason.large_change": (
        "Ændringen er over {limit} % af ugedosis.",
        "The change is more than {limit} % of the weekly dose.",
    ),
    "dose.reason.no_current_dose": (
        "Der er ingen nuværende dosis at sammenligne med.",
        "There is no current dose to compare with.",
    ),
    "dose.reason.no_usual_range": (
        "Der er intet sædvanligt interval for dette præparat.",
        "There is no usual range for this product.",
    ),
    "dose.reason.not_in_tablets": (
        "Dosis kan ikke gives i hele eller halve tabletter af {product}.",
        "The dose cannot be given in whole or half tablets of {product}.",
    ),
    "dose.confirm": (
        "Jeg har læst dosis op og bekræfter den",
        "I have read the dose back and confirm it",
    ),
    "dose.confirm_send": ("Bekræft og send", "Confirm and send"),
    "dose.confirm_needed": (
        "Sæt flueben for at bekræfte oplæsningen.",
        "Tick the box to confirm the read-back.",
    ),
    "dose.weekly": ("{mg} mg om ugen", "{mg} mg a week"),
    "dose.tablets": (
        "= {tablets} tabletter {product} {strength} mg om ugen",
        "= {tablets} tablets of {product} {strength} mg a week",
    ),
    "dose.no_tablets": (
        "kan ikke gives i hele eller halve tabletter af {product} {strength} mg",
        "cannot be given in whole or half tablets of {product} {strength} mg",
    ),
    "dose.no_product": (
        "patientens præparat er ikke registreret",
        "the patient's product is not recorded",
    ),
    "dose.confirmed_readback": (
        "Læst op og bekræftet af lægen: {current} → {new} ({change} %)",
        "Read back and confirmed by the doctor: {current} → {new} ({change} %)",
    ),
    "dose.confirmed_readback_first": (
        "Læst op og bekræftet af lægen (ingen tidligere ugedosis på journalen)",
        "Read back and confirmed by the doctor (no earlier weekly dose on record)",
    ),
    "dose.new_dose": ("Ny ugedosis", "New weekly dose"),
}
