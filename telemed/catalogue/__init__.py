"""The clinical catalogue: what the system knows of metrics, programs, strata, INR ranges and
measuring schedules, as pure data and functions (no I/O, no web framework, no MQTT, no outer
package). Everything that checks a stratum, offers a range or builds a rule reads it from here."""
