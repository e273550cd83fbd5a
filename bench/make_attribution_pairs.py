"""Build the labelled (claim, source passage, supported?) pairs that calibrate attribution.

Writes ``tests/data/attribution_pairs.jsonl``: one row per pair, with the passage text
itself (exactly as the loaders give it, so that the data needs no corpus to be read). The
passages come from the bundled sample knowledge base, the Django FAQ (Debian's
python-django-doc), the SQLite FAQ (Debian's sqlite3-doc) and the Debian FAQ (debian-faq).
Most claims were written by hand for this file: for each passage, claims it supports (a
sentence of it, a paraphrase, a short answer) and claims it does not (the right words with
another row's number or code, a wrong figure, another topic), plus claims that merge two
passages. The others (``MODEL_CLAIMS``) are sentences of the bundled model's real answers
(FAQ evaluations, ``bench/make_model_answers.py``), labelled by hand. A third of the passages (every third one, in order) is held
out: calibration never sees them, and the test measures F1 on them alone.

Run: ``python bench/make_attribution_pairs.py`` (needs python-django-doc, sqlite3-doc and
debian-faq installed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from phi3industry.demo import sample_kb_dir
from phi3industry.retrieval.documents import load_document

DJANGO_FAQ = Path("/usr/share/doc/python-django-doc/html/faq")
SQLITE_FAQ = Path("/usr/share/doc/sqlite3/faq.html")
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "attribution_pairs.jsonl"
_NUMBERED = re.compile(r"^\d+(?:\.\d+)*\.\s+")


def section(path: Path, title: str) -> tuple[str, str]:
    """The text of the section of ``path`` whose title ends with ``title``, and its context.

    The context is what a search hit of that passage carries besides its text: the
    document's title and the section path.
    """
    doc = load_document(path)
    for s in doc.sections:
        # a numbered heading ("7.2. What is ...?") is also found by its words alone
        name = s.title.split(" > ")[-1] if s.title else None
        if name is not None and title in (name, _NUMBERED.sub("", name)):
            return doc.text[s.start : s.end].strip(), f"{doc.title} {s.title}"
    raise KeyError(f"{path.name}: no section {title!r}")


def lines(path: Path, first: str, last: str) -> tuple[str, str]:
    """The lines of ``path`` from the one starting with ``first`` to the one with ``last``."""
    doc = load_document(path)
    start = doc.text.index(first)
    end = doc.text.index(last, start) + len(last)
    return doc.text[start:end], doc.title


KB = sample_kb_dir() / "docs"
CSV = KB / "support" / "error-codes.csv"


def row(code: str) -> tuple[str, str]:
    doc = load_document(CSV)
    start = doc.text.index(f"code: {code}\n")
    end = doc.text.find("\n\ncode:", start)
    number = doc.text[:start].count("\n\ncode:") + 1
    return doc.text[start : end if end > 0 else len(doc.text)].strip(), f"{doc.title} row {number}"


# passage id -> (corpus, (text, context))
PASSAGES: dict[str, tuple[str, tuple[str, str]]] = {
    "e214": ("sample-kb", row("E-214")),
    "e102": ("sample-kb", row("E-102")),
    "e330": ("sample-kb", row("E-330")),
    "e402": ("sample-kb", row("E-402")),
    "e517": ("sample-kb", row("E-517")),
    "e618": ("sample-kb", row("E-618")),
    "spec-general": ("sample-kb", lines(KB / "specs/ar7-spec.txt", "GENERAL", "lift option")),
    "spec-battery": (
        "sample-kb",
        lines(KB / "specs/ar7-spec.txt", "BATTERY AND CHARGING", "to 80 % capacity"),
    ),
    "loading": ("sample-kb", section(KB / "manuals/ar7-operator-manual.md", "Loading")),
    "modes": ("sample-kb", section(KB / "manuals/ar7-operator-manual.md", "Operating modes")),
    "startup": ("sample-kb", section(KB / "manuals/ar7-operator-manual.md", "Starting up")),
    "estop": (
        "sample-kb",
        section(KB / "manuals/ar7-operator-manual.md", "Clearing an emergency stop"),
    ),
    "dock-spec": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Specifications")),
    "dock-faults": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Dock fault codes")),
    "dock-maint": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Maintenance")),
    "warranty": ("sample-kb", section(KB / "policies/returns-policy.md", "Warranty")),
    "unused": ("sample-kb", section(KB / "policies/returns-policy.md", "Unused products")),
    "defective": ("sample-kb", section(KB / "policies/returns-policy.md", "Defective products")),
    "shared-zones": ("sample-kb", section(KB / "policies/safety-policy.html", "1. Shared zones")),
    "incidents": (
        "sample-kb",
        section(KB / "policies/safety-policy.html", "5. Incident reporting"),
    ),
    "fixes-421": ("sample-kb", section(KB / "release-notes/runneros-4.2.md", "Fixes")),
    "pm-schedule": (
        "sample-kb",
        lines(KB / "manuals/ar7-maintenance-schedule.pdf", "Daily:", "dock contact pad set"),
    ),
    "dj-cookie": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "I can’t log in. When I enter a valid username and password, it just brings up "
            "the login page again, with no error messages.",
        ),
    ),
    "dj-staff": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "I can’t log in. When I enter a valid username and password, it brings up the "
            "login page again, with a “Please enter a correct username and password” error.",
        ),
    ),
    "dj-m2m-filter": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "My “list_filter” contains a ManyToManyField, but the filter doesn’t display.",
        ),
    ),
    "dj-browsers": (
        "django",
        section(DJANGO_FAQ / "admin.html", "What browsers are supported for using the admin?"),
    ),
    "dj-name": (
        "django",
        section(
            DJANGO_FAQ / "general.html", "What does “Django” mean, and how do you pronounce it?"
        ),
    ),
    "dj-stable": ("django", section(DJANGO_FAQ / "general.html", "Is Django stable?")),
    "dj-behind": ("django", section(DJANGO_FAQ / "general.html", "Who’s behind this?")),
    "dj-license": ("django", section(DJANGO_FAQ / "general.html", "How is Django licensed?")),
    "dj-cms": (
        "django",
        section(DJANGO_FAQ / "general.html", "Is Django a content-management-system (CMS)?"),
    ),
    "dj-security": (
        "django",
        section(
            DJANGO_FAQ / "help.html", "I think I’ve found a security problem! What should I do?"
        ),
    ),
    "dj-moderation": (
        "django",
        section(DJANGO_FAQ / "help.html", "Why hasn’t my message appeared on django-users?"),
    ),
    "dj-python-version": (
        "django",
        section(DJANGO_FAQ / "install.html", "What Python version can I use with Django?"),
    ),
    "dj-stable-release": (
        "django",
        section(
            DJANGO_FAQ / "install.html", "Should I use the stable version or development version?"
        ),
    ),
    "dj-pk": (
        "django",
        section(
            DJANGO_FAQ / "models.html", "Do Django models support multiple-column primary keys?"
        ),
    ),
    "dj-nosql": (
        "django",
        section(DJANGO_FAQ / "models.html", "Does Django support NoSQL databases?"),
    ),
    "dj-myisam": (
        "django",
        section(
            DJANGO_FAQ / "models.html",
            "How do I add database-specific options to my CREATE TABLE statements, such as "
            "specifying MyISAM as the table type?",
        ),
    ),
    "dj-macos": ("django", section(DJANGO_FAQ / "troubleshooting.html", "macOS permissions")),
    "dj-media": (
        "django",
        section(DJANGO_FAQ / "usage.html", "How do I use image and file fields?"),
    ),
    "dj-scale": ("django", section(DJANGO_FAQ / "general.html", "Does Django scale?")),
    "dj-python-license": (
        "django",
        section(DJANGO_FAQ / "general.html", "Why does Django include Python’s license file?"),
    ),
    "dj-offline-docs": (
        "django",
        section(
            DJANGO_FAQ / "general.html",
            "How can I download the Django documentation to read it offline?",
        ),
    ),
    "dj-model-layer": (
        "django",
        section(DJANGO_FAQ / "usage.html", "Do I have to use your model/database layer?"),
    ),
    "dj-settings-module": (
        "django",
        section(
            DJANGO_FAQ / "usage.html",
            "Why do I get an error about importing DJANGO_SETTINGS_MODULE?",
        ),
    ),
    "dj-templates": (
        "django",
        section(
            DJANGO_FAQ / "usage.html", "I can’t stand your template language. Do I have to use it?"
        ),
    ),
    # Added on 2026-12-07 (second batch, written before any scoring; every third one is
    # held out by the same rule, so the held-out split grew with it).
    "dj-save-user": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "How do I automatically set a field’s value to the user who last edited the object "
            "in the admin?",
        ),
    ),
    "dj-missing-objects": (
        "django",
        section(DJANGO_FAQ / "admin.html", "Some objects aren’t appearing in the admin."),
    ),
    "dj-ugly-admin": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "The dynamically-generated admin site is ugly! How can I change it?",
        ),
    ),
    "dj-why-exist": (
        "django",
        section(DJANGO_FAQ / "general.html", "Why does this project exist?"),
    ),
    "dj-cite": ("django", section(DJANGO_FAQ / "general.html", "How do I cite Django?")),
    "dj-no-answer": (
        "django",
        section(DJANGO_FAQ / "help.html", "Nobody answered my question! What should I do?"),
    ),
    "dj-prereqs": (
        "django",
        section(DJANGO_FAQ / "install.html", "What are Django’s prerequisites?"),
    ),
    "dj-which-python": (
        "django",
        section(DJANGO_FAQ / "install.html", "What Python version should I use with Django?"),
    ),
    "dj-raw-sql": (
        "django",
        section(DJANGO_FAQ / "models.html", "How can I see the raw SQL queries Django is running?"),
    ),
    "dj-update-db": (
        "django",
        section(
            DJANGO_FAQ / "models.html",
            "If I make changes to a model, how do I update the database?",
        ),
    ),
    "dj-admin-path": (
        "django",
        section(DJANGO_FAQ / "troubleshooting.html", "command not found: django-admin"),
    ),
    "dj-unicode": (
        "django",
        section(
            DJANGO_FAQ / "troubleshooting.html",
            "I’m getting a UnicodeDecodeError. What am I doing wrong?",
        ),
    ),
    "dj-context-var": (
        "django",
        section(
            DJANGO_FAQ / "usage.html", "How do I make a variable available to all my templates?"
        ),
    ),
    # Added on 2026-12-07, evening (third batch, written before any scoring; every third
    # one is held out by the same rule). The whole batch was also scored with weights fitted
    # on the first two batches only: an estimate on claims nobody had looked at.
    "e810": ("sample-kb", row("E-810")),
    "e811": ("sample-kb", row("E-811")),
    "e331": ("sample-kb", row("E-331")),
    "e405": ("sample-kb", row("E-405")),
    "e205": ("sample-kb", row("E-205")),
    "safety-estops": (
        "sample-kb",
        section(KB / "policies/safety-policy.html", "2. Emergency stops"),
    ),
    "battery-work": ("sample-kb", section(KB / "policies/safety-policy.html", "3.1 Battery work")),
    "refunds": ("sample-kb", section(KB / "policies/returns-policy.md", "Refunds")),
    "rma": ("sample-kb", section(KB / "policies/returns-policy.md", "Requesting an RMA")),
    "daily-checks": ("sample-kb", section(KB / "manuals/ar7-operator-manual.md", "Daily checks")),
    "shutdown": ("sample-kb", section(KB / "manuals/ar7-operator-manual.md", "Shutting down")),
    "requirements": ("sample-kb", section(KB / "release-notes/runneros-4.2.md", "Requirements")),
    "dj-remind": (
        "django",
        section(
            DJANGO_FAQ / "contributing.html",
            "When and how might I remind the team of a patch I care about?",
        ),
    ),
    "dj-limit-admin": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "How do I limit admin access so that objects can only be edited by the users who "
            "created them?",
        ),
    ),
    "dj-customize-admin": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "How can I customize the functionality of the admin interface?",
        ),
    ),
    # Added on 2026-12-07, night (fourth batch, written before any scoring, by the same
    # rules). The whole batch was scored with the weights fitted on the first three batches'
    # train pairs, before it could inform any change: the estimate on unseen claims.
    "e101": ("sample-kb", row("E-101")),
    "e230": ("sample-kb", row("E-230")),
    "e340": ("sample-kb", row("E-340")),
    "e701": ("sample-kb", row("E-701")),
    "e702": ("sample-kb", row("E-702")),
    "e905": ("sample-kb", row("E-905")),
    "status-ring": (
        "sample-kb",
        section(KB / "manuals/ar7-operator-manual.md", "Status ring colors"),
    ),
    "firmware": ("sample-kb", section(KB / "manuals/ar7-operator-manual.md", "Firmware updates")),
    "dock-led": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Status LED")),
    "dock-site": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Site requirements")),
    "lockout": (
        "sample-kb",
        section(KB / "policies/safety-policy.html", "3. Maintenance and lockout/tagout"),
    ),
    "training": ("sample-kb", section(KB / "policies/safety-policy.html", "4. Training")),
    "new-features": ("sample-kb", section(KB / "release-notes/runneros-4.2.md", "New features")),
    "support": ("sample-kb", section(KB / "company/about-northwind.md", "Support")),
    "upgrade": (
        "sample-kb",
        section(KB / "release-notes/runneros-4.2.md", "Upgrading from RunnerOS 4.1"),
    ),
    "dj-scratch": (
        "django",
        section(
            DJANGO_FAQ / "general.html",
            "Why did you write all of Django from scratch, instead of using other Python "
            "libraries?",
        ),
    ),
    "dj-ready": (
        "django",
        section(
            DJANGO_FAQ / "contributing.html",
            "I’m sure my ticket is absolutely 100% perfect, can I mark it as “Ready For "
            "Checkin” myself?",
        ),
    ),
    "dj-legacy": (
        "django",
        section(DJANGO_FAQ / "models.html", "Can I use Django with a pre-existing database?"),
    ),
    # Added on 2026-12-07, night (fifth batch, written after the fourth batch's changes and
    # before any scoring of it). Scored whole with the weights fitted on the first four
    # batches' train pairs: the estimate on unseen claims of the current signals.
    "e520": ("sample-kb", row("E-520")),
    "e620": ("sample-kb", row("E-620")),
    "controls": (
        "sample-kb",
        section(KB / "manuals/ar7-operator-manual.md", "Controls and indicators"),
    ),
    "dock-commissioning": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Commissioning")),
    "dock-anchoring": ("sample-kb", section(KB / "manuals/charging-dock.rst", "Anchoring")),
    "dock-pads": ("sample-kb", section(KB / "policies/safety-policy.html", "3.2 Charging docks")),
    "known-issues": ("sample-kb", section(KB / "release-notes/runneros-4.2.md", "Known issues")),
    "products": ("sample-kb", section(KB / "company/about-northwind.md", "Products")),
    "nw-training": ("sample-kb", section(KB / "company/about-northwind.md", "Training")),
    "dj-mvc": (
        "django",
        section(
            DJANGO_FAQ / "general.html",
            "Django appears to be a MVC framework, but you call the Controller the “view”, and "
            "the View the “template”. How come you don’t use the standard names?",
        ),
    ),
    "dj-reminded": (
        "django",
        section(
            DJANGO_FAQ / "contributing.html",
            "But I’ve reminded you several times and you keep ignoring my patch!",
        ),
    ),
    "dj-get-started": ("django", section(DJANGO_FAQ / "install.html", "How do I get started?")),
    "dj-sites": ("django", section(DJANGO_FAQ / "general.html", "Which sites use Django?")),
    # Added on 2026-12-07, late night (sixth batch, written after the shipped weights and
    # every rule, before any scoring of it). It adds "recombined" claims: the passage's own
    # words and figures put together into something it does not say, which the evaluation's
    # RAFT answers showed passing. Scored whole, once, before it could inform anything.
    "about": ("sample-kb", section(KB / "company/about-northwind.md", "About Northwind Robotics")),
    "ticket-21004": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21004", "No map changes were needed."),
    ),
    "ticket-21122": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21122", "cutting station."),
    ),
    "ticket-21477": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21477", "cold-rated model."),
    ),
    "ticket-21260": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21260", "rack layout change."),
    ),
    "release-421": (
        "sample-kb",
        section(KB / "release-notes/runneros-4.2.md", "RunnerOS 4.2.1 (released 12 August 2024)"),
    ),
    "dj-framework-x": (
        "django",
        section(
            DJANGO_FAQ / "general.html", "<Framework X> does <feature Y> – why doesn’t Django?"
        ),
    ),
    "dj-help": (
        "django",
        section(
            DJANGO_FAQ / "help.html",
            "How do I do X? Why doesn’t Y work? Where can I go to get help?",
        ),
    ),
    # Added on 2026-12-07, last (seventh batch, written blind after the sixth, before any
    # scoring). Scored once with the shipped rules and with a figure-binding rule tried
    # beside them (docs/grounding.md), to decide on that rule with unseen claims.
    "spec-performance": (
        "sample-kb",
        lines(KB / "specs/ar7-spec.txt", "PERFORMANCE", "10 mm step"),
    ),
    "spec-sensors": ("sample-kb", lines(KB / "specs/ar7-spec.txt", "SENSORS AND SAFETY", "at 1 m")),
    "spec-environment": (
        "sample-kb",
        lines(KB / "specs/ar7-spec.txt", "ENVIRONMENT", "clean and dry"),
    ),
    "ticket-20931": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-20931", "to the daily checks."),
    ),
    "ticket-21318": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21318", "12-month battery warranty."),
    ),
    "ticket-21402": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21402", "pays return shipping."),
    ),
    "ticket-21533": (
        "sample-kb",
        lines(KB / "support/tickets.jsonl", "Ticket NW-T-21533", "FleetOS Map Editor."),
    ),
    # Added on 2026-12-08 (eighth batch, written blind after the seventh, before any
    # scoring). Parts no earlier passage uses: the documents' opening sections, the spec's
    # connectivity and spare parts, the schedule's header and wear limits, four FAQ answers.
    "spec-connectivity": (
        "sample-kb",
        lines(KB / "specs/ar7-spec.txt", "CONNECTIVITY", "(current release)"),
    ),
    "spec-spare-parts": (
        "sample-kb",
        lines(KB / "specs/ar7-spec.txt", "SPARE PARTS", "NW-PD-0100"),
    ),
    "pm-header": (
        "sample-kb",
        lines(
            KB / "manuals/ar7-maintenance-schedule.pdf",
            "AR7 Preventive Maintenance Schedule",
            "Robot > Counters.",
        ),
    ),
    "pm-wear-limits": (
        "sample-kb",
        lines(
            KB / "manuals/ar7-maintenance-schedule.pdf",
            "Wear limits",
            "require a complete log.",
        ),
    ),
    "manual-intro": (
        "sample-kb",
        section(KB / "manuals/ar7-operator-manual.md", "AR7 Operator Manual"),
    ),
    "dock-intro": (
        "sample-kb",
        section(KB / "manuals/charging-dock.rst", "CD-2 Charging Dock Manual"),
    ),
    "returns-intro": (
        "sample-kb",
        section(KB / "policies/returns-policy.md", "Returns and Warranty Policy"),
    ),
    "returns-questions": ("sample-kb", section(KB / "policies/returns-policy.md", "Questions")),
    "safety-intro": (
        "sample-kb",
        section(KB / "policies/safety-policy.html", "Robot Safety Policy"),
    ),
    "release-intro": (
        "sample-kb",
        section(KB / "release-notes/runneros-4.2.md", "RunnerOS 4.2 Release Notes"),
    ),
    "dj-ignored-patch": (
        "django",
        section(
            DJANGO_FAQ / "contributing.html",
            "I submitted a bug fix in the ticket system several weeks ago. Why are you "
            "ignoring my patch?",
        ),
    ),
    "dj-mod-wsgi": (
        "django",
        section(
            DJANGO_FAQ / "admin.html",
            "My admin-site CSS and images showed up fine using the development server, but "
            "they’re not displaying when using mod_wsgi.",
        ),
    ),
    "dj-bug": (
        "django",
        section(DJANGO_FAQ / "help.html", "I think I’ve found a bug! What should I do?"),
    ),
    "dj-contrib-start": (
        "django",
        section(
            DJANGO_FAQ / "contributing.html", "How can I get started contributing code to Django?"
        ),
    ),
    # Added on 2026-12-08 (tenth batch: SQLite FAQ entries, for the claims of MODEL_CLAIMS[10]).
    # Each is one whole FAQ entry, question and answer. Left out: (5), whose answer is too
    # long for one passage, and (2), whose answers hold no usable claim.
    "sq-autoincrement": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(1) How do I create an AUTOINCREMENT field?",
            "fail with an SQLITE_FULL error code.",
        ),
    ),
    "sq-string-in-integer": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(3) SQLite lets me insert a string",
            "This feature is called type affinity.",
        ),
    ),
    "sq-zero-primary-key": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(4) Why doesn't SQLite allow me to use '0'",
            "Hence the values are not unique.",
        ),
    ),
    "sq-threadsafe": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(6) Is SQLite threadsafe?",
            "across a fork() system call into the child process.",
        ),
    ),
    "sq-list-tables": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(7) How do I list all tables/indices",
            "SELECT * FROM sqlite_temp_schema)\nWHERE type='table'\nORDER BY name",
        ),
    ),
    "sq-size-limits": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(8) Are there any known size limits",
            "full discussion of the limits of SQLite.",
        ),
    ),
    "sq-varchar": (
        "sqlite",
        lines(
            SQLITE_FAQ, "(9) What is the maximum size of a VARCHAR", "regardless of the value of N."
        ),
    ),
    "sq-blob": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(10) Does SQLite support a BLOB type?",
            "BLOBs can even be used as PRIMARY KEYs.",
        ),
    ),
    "sq-alter-table": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(11) How do I add, delete or rename columns",
            "Schema Changes for procedure.",
        ),
    ),
    "sq-vacuum": (
        "sqlite",
        lines(SQLITE_FAQ, "(12) I deleted a lot of data", "enabled using the auto_vacuum pragma."),
    ),
    "sq-royalties": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(13) Can I use SQLite in my commercial product",
            "You can do anything you want with it.",
        ),
    ),
    "sq-single-quote": (
        "sqlite",
        lines(SQLITE_FAQ, "(14) How do I use a string literal", "VALUES('5 O''clock');"),
    ),
    "sq-schema-error": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(15) What is an SQLITE_SCHEMA error",
            "always use sqlite3_prepare_v2() instead of sqlite3_prepare().",
        ),
    ),
    "sq-compiler-warnings": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(17) I get some compiler warnings",
            "that the SQLite developers do not use themselves.",
        ),
    ),
    "sq-unicode-case": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(18) Case-insensitive matching of Unicode",
            "already contained within their project.",
        ),
    ),
    "sq-insert-slow": (
        "sqlite",
        lines(SQLITE_FAQ, "(19) INSERT is really slow", "your database file might go corrupt."),
    ),
    "sq-recover-deleted": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(20) I accidentally deleted some important",
            "no procedures or tools that we know of to help you recover that data.",
        ),
    ),
    "sq-corrupt": (
        "sqlite",
        lines(
            SQLITE_FAQ, "(21) What is an SQLITE_CORRUPT error?", "to put him back together again."
        ),
    ),
    "sq-foreign-keys": (
        "sqlite",
        lines(
            SQLITE_FAQ, "(22) Does SQLite support foreign keys?", "-DSQLITE_DEFAULT_FOREIGN_KEYS=1."
        ),
    ),
    "sq-omit-options": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(23) I get a compiler error if I use the SQLITE_OMIT_",
            "can be found with the SQLITE_OMIT_... documentation.",
        ),
    ),
    "sq-where-double-quotes": (
        "sqlite",
        lines(SQLITE_FAQ, "(24) My WHERE clause expression", "which is obviously always true."),
    ),
    "sq-railroad": (
        "sqlite",
        lines(
            SQLITE_FAQ, "(25) How are the syntax diagrams", "first landed on trunk on 2020-09-26."
        ),
    ),
    "sq-unique-null": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(26) The SQL standard requires that a UNIQUE constraint",
            "so that is what SQLite does.",
        ),
    ),
    "sq-eccn": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(27) What is the Export Control Classification Number",
            "might change the ECCN in your particular case.",
        ),
    ),
    "sq-column-name": (
        "sqlite",
        lines(
            SQLITE_FAQ,
            "(28) My query does not return the column name",
            "documentation for further information.",
        ),
    ),
    # Added on 2026-12-08 (twelfth batch: Debian FAQ entries, for the claims of
    # MODEL_CLAIMS[12]). Each is one whole FAQ entry (its heading's section), question and answer.
    "db-what-is": (
        "debian",
        section(DEBIAN_FAQ / "basic-defs.en.html", "What is Debian GNU/Linux?"),
    ),
    "db-gnu": (
        "debian",
        section(
            DEBIAN_FAQ / "basic-defs.en.html",
            "How does the Debian project fit in or compare with the Free Software Foundation's GNU project?",
        ),
    ),
    "db-derivatives": (
        "debian",
        section(
            DEBIAN_FAQ / "choosing.en.html",
            "But what about Knoppix, Linux Mint Debian Edition, Ubuntu, and others?",
        ),
    ),
    "db-compat": (
        "debian",
        section(
            DEBIAN_FAQ / "compatibility.en.html",
            "How compatible is Debian with other distributions of Linux?",
        ),
    ),
    "db-non-debian": (
        "debian",
        section(DEBIAN_FAQ / "compatibility.en.html", "How should I install a non-Debian program?"),
    ),
    "db-donate": (
        "debian",
        section(
            DEBIAN_FAQ / "contributing.en.html",
            "How can I contribute financially to the Debian project?",
        ),
    ),
    "db-console-font": (
        "debian",
        section(
            DEBIAN_FAQ / "customizing.en.html",
            "How do I load a console font on startup the Debian way?",
        ),
    ),
    "db-sysv-init": (
        "debian",
        section(
            DEBIAN_FAQ / "customizing.en.html",
            "And how about Debian and traditional System V init?",
        ),
    ),
    "db-override-file": (
        "debian",
        section(
            DEBIAN_FAQ / "customizing.en.html",
            "How do I override a file installed by a package, so that a different version can be used instead?",
        ),
    ),
    "db-how-many": (
        "debian",
        section(DEBIAN_FAQ / "ftparchives.en.html", "How many Debian distributions are there?"),
    ),
    "db-stable-dir": (
        "debian",
        section(DEBIAN_FAQ / "ftparchives.en.html", "What does the stable directory contain?"),
    ),
    "db-archive-dirs": (
        "debian",
        section(
            DEBIAN_FAQ / "ftparchives.en.html",
            "What are all those directories at the Debian archives?",
        ),
    ),
    "db-pool": (
        "debian",
        section(DEBIAN_FAQ / "ftparchives.en.html", "What's in the pool directory?"),
    ),
    "db-latest": (
        "debian",
        section(DEBIAN_FAQ / "getting-debian.en.html", "What is the latest version of Debian?"),
    ),
    "db-cdrom": (
        "debian",
        section(DEBIAN_FAQ / "getting-debian.en.html", "How do I install Debian from CD-ROMs?"),
    ),
    "db-kernel-compile": (
        "debian",
        section(
            DEBIAN_FAQ / "kernel.en.html",
            "Can I install and compile a kernel without some Debian-specific tweaking?",
        ),
    ),
    "db-old-kernel": (
        "debian",
        section(
            DEBIAN_FAQ / "kernel.en.html",
            "Can I safely de-install an old kernel package, and if so, how?",
        ),
    ),
    "db-deb-format": (
        "debian",
        section(
            DEBIAN_FAQ / "pkg-basics.en.html", "What is the format of a Debian binary package?"
        ),
    ),
    "db-conffile": (
        "debian",
        section(DEBIAN_FAQ / "pkg-basics.en.html", "What is a Debian conffile?"),
    ),
    "db-virtual": (
        "debian",
        section(DEBIAN_FAQ / "pkg-basics.en.html", "What is a Virtual Package?"),
    ),
    "db-want-flags": (
        "debian",
        section(
            DEBIAN_FAQ / "pkg-basics.en.html",
            "What is meant by unknown, install, remove, purge and hold in the package status?",
        ),
    ),
    "db-build-binary": (
        "debian",
        section(
            DEBIAN_FAQ / "pkg-basics.en.html",
            "How do I build binary packages from a source package?",
        ),
    ),
    "db-running-update": (
        "debian",
        section(
            DEBIAN_FAQ / "pkgtools.en.html",
            "Debian claims to be able to update a running program; how is this accomplished?",
        ),
    ),
    "db-which-package": (
        "debian",
        section(
            DEBIAN_FAQ / "pkgtools.en.html",
            "How can I find out what package produced a particular file?",
        ),
    ),
    "db-non-free": (
        "debian",
        section(
            DEBIAN_FAQ / "redistributing.en.html", "Can Debian be packaged with non-free software?"
        ),
    ),
    "db-software": (
        "debian",
        section(
            DEBIAN_FAQ / "software.en.html",
            "What types of applications and development software are available for Debian GNU/Linux?",
        ),
    ),
    "db-build-essential": (
        "debian",
        section(
            DEBIAN_FAQ / "software.en.html",
            "How can I install a developer's environment to build packages?",
        ),
    ),
    "db-java": (
        "debian",
        section(DEBIAN_FAQ / "software.en.html", "(How) Does Debian support Java?"),
    ),
    "db-djb": ("debian", section(DEBIAN_FAQ / "software.en.html", "Where is ezmlm/djbdns/qmail?")),
    "db-voip": ("debian", section(DEBIAN_FAQ / "software.en.html", "Where is VoIP software?")),
    "db-online": (
        "debian",
        section(
            DEBIAN_FAQ / "support.en.html", "Are there any on-line resources for discussing Debian?"
        ),
    ),
    "db-report-bug": (
        "debian",
        section(DEBIAN_FAQ / "support.en.html", "How do I report a bug in Debian?"),
    ),
    "db-keep-debs": (
        "debian",
        section(
            DEBIAN_FAQ / "uptodate.en.html",
            "Do I have to keep all those .deb archive files on my disk?",
        ),
    ),
}

# (passage ids, claim, supported, kind)
Y, N = True, False
CLAIMS: list[tuple[tuple[str, ...], str, bool, str]] = [
    # -- error code rows: the right words, the wrong row ------------------------------------
    (("e214",), "E-214 means the drive motor is over temperature.", Y, "paraphrase"),
    (("e214",), "Let the robot cool for 15 minutes after an E-214.", Y, "paraphrase"),
    (
        ("e214",),
        "If E-214 happens three times in 24 hours, replace the drive wheel module NW-SP-2210.",
        Y,
        "paraphrase",
    ),
    (("e214",), "E-214 means the safety lidar communication was lost.", N, "wrong-row"),
    (("e102",), "E-214 means the safety lidar communication was lost.", N, "wrong-row"),
    (("e214",), "After an E-214, let the robot cool for 30 minutes.", N, "wrong-number"),
    (("e214",), "E-214 requires replacing the lidar NW-SP-4410.", N, "wrong-row"),
    (("e102",), "E-102 means the safety lidar communication was lost.", Y, "exact"),
    (
        ("e102",),
        "For E-102, power-cycle the robot and call support if it comes back.",
        Y,
        "paraphrase",
    ),
    (("e102",), "E-102 is a warning about a dirty lidar window.", N, "wrong-row"),
    (("e102",), "E-102 means the drive motor is over temperature.", N, "wrong-row"),
    (("e330",), "E-330 is a battery cell voltage imbalance above 50 mV.", Y, "exact"),
    (
        ("e330",),
        "To fix E-330, leave the robot on a dock for 8 hours for a balancing charge.",
        Y,
        "paraphrase",
    ),
    (("e330",), "To fix E-330, leave the robot on a dock for 2 hours.", N, "wrong-number"),
    (("e330",), "E-330 means the battery is above 55 °C.", N, "wrong-row"),
    (("e402",), "E-402 is raised when docking alignment fails three times.", Y, "paraphrase"),
    (
        ("e402",),
        "For E-402, clean the dock pads and check the four M10 anchor bolts at 40 N·m.",
        Y,
        "paraphrase",
    ),
    (("e402",), "E-402 means no charging current was detected.", N, "wrong-row"),
    (("e402",), "The dock bolts of an E-402 must be tightened to 60 N·m.", N, "wrong-number"),
    (("e517",), "E-517 means an emergency stop is engaged.", Y, "exact"),
    (
        ("e517",),
        "To clear E-517, twist the e-stop button clockwise and press RESUME on the pendant.",
        Y,
        "paraphrase",
    ),
    (
        ("e517",),
        "To clear E-517, pull the e-stop button out and restart the robot.",
        N,
        "contradiction",
    ),
    (("e618",), "E-618 warns that the localization confidence is low.", Y, "paraphrase"),
    (("e618",), "Frequent false E-618 warnings were fixed in RunnerOS 4.2.1.", Y, "exact"),
    (("e618",), "E-618 warnings were fixed in RunnerOS 4.1.", N, "wrong-number"),
    (
        ("e618",),
        "E-618 means the map does not match and the zone must be re-mapped.",
        N,
        "wrong-row",
    ),
    # -- specification and manuals ----------------------------------------------------------
    (("spec-general",), "The AR7 can carry a payload of up to 450 kg.", Y, "paraphrase"),
    (("spec-general",), "Without load the AR7 weighs 142 kg.", Y, "paraphrase"),
    (("spec-general",), "The AR7 is 980 x 680 x 310 mm.", Y, "exact"),
    (("spec-general",), "The AR7 can carry up to 500 kg.", N, "wrong-number"),
    (("spec-general",), "The AR7's maximum speed is 2.0 m/s.", N, "other-topic"),
    (("spec-battery",), "The AR7 battery is a 48 V, 60 Ah LiFePO4 pack.", Y, "paraphrase"),
    (
        ("spec-battery",),
        "Charging from 20 to 80 % takes 35 minutes on the CD-2 dock.",
        Y,
        "paraphrase",
    ),
    (("spec-battery",), "The battery lasts 2,000 full cycles to 80 % capacity.", Y, "paraphrase"),
    (("spec-battery",), "Charging from 0 to 100 % takes 35 minutes.", N, "wrong-number"),
    (("spec-battery",), "The AR7 battery part number is NW-SP-2210.", N, "wrong-number"),
    (("loading",), "The load may overhang the deck by at most 50 mm on any side.", Y, "exact"),
    (("loading",), "Loads above 450 kg are refused with error E-810.", Y, "paraphrase"),
    (
        ("loading",),
        "The center of gravity of the load must stay below 600 mm above the deck.",
        Y,
        "paraphrase",
    ),
    (("loading",), "Loads above 450 kg are refused with error E-811.", N, "wrong-number"),
    (("loading",), "The load may overhang the deck by up to 150 mm.", N, "wrong-number"),
    (("modes",), "In MANUAL mode the jog speed is limited to 0.3 m/s.", Y, "paraphrase"),
    (("modes",), "Entering SERVICE mode requires the technician PIN.", Y, "exact"),
    (("modes",), "In AUTO mode the robot executes missions from FleetOS.", Y, "paraphrase"),
    (("modes",), "In MANUAL mode the safety lidars are switched off.", N, "contradiction"),
    (("modes",), "The robot has five operating modes.", N, "wrong-number"),
    (("startup",), "Hold the power button for 3 seconds to start the robot.", Y, "paraphrase"),
    (("startup",), "The self-test takes about 90 seconds.", Y, "paraphrase"),
    (("startup",), "The self-test takes about 10 minutes.", N, "wrong-number"),
    (("startup",), "The status ring turns blue when the robot is charging.", N, "other-topic"),
    (("estop",), "After an e-stop button is pressed the robot reports E-517.", Y, "exact"),
    (("estop",), "The robot stays stopped until RESUME is pressed.", Y, "exact"),
    (
        ("estop",),
        "The robot restarts by itself one minute after the e-stop is released.",
        N,
        "contradiction",
    ),
    (
        ("dock-spec",),
        "The CD-2 dock needs 200-240 V AC on a dedicated 16 A circuit.",
        Y,
        "paraphrase",
    ),
    (("dock-spec",), "One dock can serve up to four robots.", Y, "exact"),
    (
        ("dock-spec",),
        "Northwind recommends one dock for every three robots in two-shift operation.",
        Y,
        "paraphrase",
    ),
    (("dock-spec",), "One dock can serve up to ten robots.", N, "wrong-number"),
    (("dock-spec",), "The CD-2 dock is rated IP54 for outdoor use.", N, "wrong-number"),
    (("dock-faults",), "D-02 means a short circuit on the contact pads.", Y, "paraphrase"),
    (
        ("dock-faults",),
        "With D-01 the dock pauses charging until it cools below 45 °C.",
        Y,
        "paraphrase",
    ),
    (("dock-faults",), "D-03 means the contact pads are short-circuited.", N, "wrong-row"),
    (("dock-faults",), "D-04 means the mains voltage is out of range.", N, "wrong-row"),
    (
        ("dock-maint",),
        "Clean the copper contact pads every two weeks with isopropyl alcohol.",
        Y,
        "paraphrase",
    ),
    (
        ("dock-maint",),
        "Replace the contact pad set NW-SP-5120 at the latest every 24 months.",
        Y,
        "paraphrase",
    ),
    (
        ("dock-maint",),
        "Switch off the dock's breaker before touching the pads, which carry 48 V DC.",
        Y,
        "paraphrase",
    ),
    (("dock-maint",), "Replace the contact pad set every 6 months.", N, "wrong-number"),
    (
        ("dock-maint",),
        "The contact pads can be cleaned with water while the dock is on.",
        N,
        "contradiction",
    ),
    # -- policies ---------------------------------------------------------------------------
    (
        ("warranty",),
        "The AR7 robot is under warranty for 24 months from delivery.",
        Y,
        "paraphrase",
    ),
    (("warranty",), "The CD-2 charging dock has a 36-month warranty.", Y, "paraphrase"),
    (
        ("warranty",),
        "The warranty does not cover wear parts such as bumper strips.",
        Y,
        "paraphrase",
    ),
    (("warranty",), "The AR7 battery pack is under warranty for 36 months.", N, "wrong-row"),
    (
        ("warranty",),
        "Damage from overloading beyond 450 kg is covered by the warranty.",
        N,
        "contradiction",
    ),
    (("unused",), "Unused products can be returned within 30 days of delivery.", Y, "paraphrase"),
    (
        ("unused",),
        "A restocking fee of 15 % of the purchase price applies to returned unused products.",
        Y,
        "paraphrase",
    ),
    (("unused",), "Custom-configured robots cannot be returned.", Y, "paraphrase"),
    (("unused",), "Unused products can be returned within 60 days.", N, "wrong-number"),
    (("unused",), "The restocking fee is 25 %.", N, "wrong-number"),
    (("defective",), "Northwind pays the return shipping for defective products.", Y, "paraphrase"),
    (
        ("defective",),
        "Premium support customers get a loaner AR7 within 2 business days.",
        Y,
        "paraphrase",
    ),
    (
        ("defective",),
        "The customer pays return shipping for defective products.",
        N,
        "contradiction",
    ),
    (("shared-zones",), "Robots are limited to 1.0 m/s in shared zones.", Y, "exact"),
    (
        ("shared-zones",),
        "Pedestrians must keep at least 0.5 m away from a moving robot.",
        Y,
        "paraphrase",
    ),
    (("shared-zones",), "Robots may drive at 2.0 m/s in shared zones.", N, "wrong-number"),
    (
        ("incidents",),
        "Every collision or near miss must be reported within 24 hours using form SAF-F7.",
        Y,
        "paraphrase",
    ),
    (("incidents",), "Incidents must be reported within 7 days.", N, "wrong-number"),
    (
        ("fixes-421",),
        "RunnerOS 4.2.1 fixed the battery gauge jumping from 16 % to 11 % during docking.",
        Y,
        "paraphrase",
    ),
    (
        ("fixes-421",),
        "The pendant now shows the dock fault code together with E-405.",
        Y,
        "paraphrase",
    ),
    (("fixes-421",), "RunnerOS 4.2.1 made docking 20 % faster.", N, "other-topic"),
    (
        ("pm-schedule",),
        "The drive belt tension is checked every 1,000 operating hours.",
        Y,
        "paraphrase",
    ),
    (("pm-schedule",), "Test both e-stop buttons and the pendant e-stop weekly.", Y, "paraphrase"),
    (
        ("pm-schedule",),
        "The drive belt tension is checked every 250 operating hours.",
        N,
        "wrong-number",
    ),
    # -- claims that merge two passages -----------------------------------------------------
    (
        ("spec-general", "dock-spec"),
        "The AR7 carries up to 450 kg, and one CD-2 dock can serve up to four robots.",
        Y,
        "merged",
    ),
    (
        ("spec-general",),
        "The AR7 carries up to 450 kg, and one CD-2 dock can serve up to four robots.",
        N,
        "merged-half",
    ),
    (
        ("e214", "dock-maint"),
        "E-214 means drive motor over-temperature, and the dock contact pads are cleaned every two weeks.",
        Y,
        "merged",
    ),
    (
        ("unused", "defective"),
        "Unused products carry a 15 % restocking fee, while Northwind pays the shipping for defective ones.",
        Y,
        "merged",
    ),
    (
        ("unused",),
        "Unused products carry a 15 % restocking fee, while Northwind pays the shipping for defective ones.",
        N,
        "merged-half",
    ),
    # -- Django FAQ -------------------------------------------------------------------------
    (
        ("dj-cookie",),
        "If the admin login page keeps coming back, set SESSION_COOKIE_DOMAIN to your domain.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-cookie",),
        "The login cookie's domain does not match the domain in your browser.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-cookie",),
        "To fix the admin login loop, set is_active and is_staff to True.",
        N,
        "wrong-row",
    ),
    (("dj-staff",), "Admin users need both is_active and is_staff set to True.", Y, "paraphrase"),
    (
        ("dj-staff",),
        "The admin site only lets in users whose is_superuser field is True.",
        N,
        "contradiction",
    ),
    (
        ("dj-m2m-filter",),
        "The ManyToManyField filter is not shown when there are fewer than two related objects.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-m2m-filter",),
        "The ManyToManyField filter is hidden when there are fewer than ten related objects.",
        N,
        "wrong-number",
    ),
    (
        ("dj-browsers",),
        "The admin supports recent versions of Chrome, Edge, Firefox, Opera and Safari.",
        Y,
        "paraphrase",
    ),
    (("dj-browsers",), "The admin only supports Internet Explorer 11.", N, "contradiction"),
    (("dj-name",), "Django is named after the jazz guitarist Django Reinhardt.", Y, "paraphrase"),
    (("dj-name",), "Django is pronounced JANG-oh, and the D is silent.", Y, "paraphrase"),
    (("dj-name",), "Django is named after a city in Kansas.", N, "contradiction"),
    (
        ("dj-stable",),
        "Sites built on Django have handled traffic spikes of over 50 thousand hits per second.",
        Y,
        "paraphrase",
    ),
    (("dj-stable",), "Django sites have handled 5 million hits per second.", N, "wrong-number"),
    (
        ("dj-behind",),
        "Django was first developed at World Online, a newspaper's web department in Lawrence, Kansas.",
        Y,
        "paraphrase",
    ),
    (("dj-behind",), "Django was first developed at Google in California.", N, "contradiction"),
    (("dj-license",), "Django is distributed under the 3-clause BSD license.", Y, "exact"),
    (("dj-license",), "Django is distributed under the GPL version 3.", N, "wrong-number"),
    (
        ("dj-cms",),
        "Django is not a CMS; it is a web framework for building websites.",
        Y,
        "paraphrase",
    ),
    (("dj-cms",), "Django is a turnkey content management system like Drupal.", N, "contradiction"),
    (
        ("dj-security",),
        "Report a Django security problem by email to security@djangoproject.com.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-security",),
        "Security problems should be posted on the public forum first.",
        N,
        "contradiction",
    ),
    (
        ("dj-moderation",),
        "The first message a new member sends to django-users is moderated by hand.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-moderation",),
        "Every message to django-users is rejected for the first month.",
        N,
        "contradiction",
    ),
    (("dj-python-version",), "Django 3.2 supports Python 3.6 to 3.10.", Y, "paraphrase"),
    (
        ("dj-python-version",),
        "Django 1.8 was the last version to support Python 3.3.",
        Y,
        "paraphrase",
    ),
    (("dj-python-version",), "Django 2.2 supports Python 3.10.", N, "wrong-row"),
    (
        ("dj-python-version",),
        "Django 3.0 was the last version to support Python 3.3.",
        N,
        "wrong-number",
    ),
    (
        ("dj-stable-release",),
        "Django publishes a full stable release about every nine months.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-stable-release",),
        "Django publishes a stable release every two weeks.",
        N,
        "wrong-number",
    ),
    (("dj-pk",), "Django models only support single-column primary keys.", Y, "paraphrase"),
    (
        ("dj-pk",),
        "Django models fully support composite primary keys of several columns.",
        N,
        "contradiction",
    ),
    (("dj-nosql",), "NoSQL databases are not officially supported by Django.", Y, "exact"),
    (("dj-nosql",), "Django officially supports MongoDB.", N, "contradiction"),
    (
        ("dj-myisam",),
        "To use MyISAM tables, create a migration with a RunSQL operation that runs ALTER TABLE.",
        Y,
        "paraphrase",
    ),
    (("dj-myisam",), "Set the MYISAM_TABLES setting to True to use MyISAM.", N, "contradiction"),
    (
        ("dj-macos",),
        "On macOS, run sudo chmod +x django-admin to fix a permission denied error.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-macos",),
        "On macOS, reinstall Python to fix permission denied errors with django-admin.",
        N,
        "contradiction",
    ),
    (
        ("dj-media",),
        "Define MEDIA_ROOT as the full path of the directory where uploaded files are stored.",
        Y,
        "paraphrase",
    ),
    (("dj-media",), "Uploaded files are stored inside the database.", N, "contradiction"),
    (
        ("dj-templates",),
        "Django does not require its template language; Jinja2 or Mako can be used instead.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-templates",),
        "Django requires its own template language and cannot use Jinja2.",
        N,
        "contradiction",
    ),
    (
        ("dj-scale",),
        "Django uses a shared-nothing architecture, so hardware can be added at any level.",
        Y,
        "paraphrase",
    ),
    (("dj-scale",), "Django ships with a cache framework.", Y, "paraphrase"),
    (("dj-scale",), "Django cannot use more than one database server.", N, "contradiction"),
    (
        ("dj-python-license",),
        "Django includes Python's license because it contains code from the Python standard library.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-python-license",),
        "Django includes Python's license because Django is written by the Python Software Foundation.",
        N,
        "contradiction",
    ),
    (
        ("dj-offline-docs",),
        "The Django docs are in the docs directory of each release tarball, in reStructuredText.",
        Y,
        "paraphrase",
    ),
    (("dj-offline-docs",), "The Django documentation can only be read online.", N, "contradiction"),
    (
        ("dj-model-layer",),
        "Without Django's database layer you cannot use the automatically generated admin site.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-model-layer",),
        "The model layer is decoupled from the rest of the framework.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-model-layer",),
        "Django's admin site works with any database library.",
        N,
        "contradiction",
    ),
    (
        ("dj-settings-module",),
        "DJANGO_SETTINGS_MODULE must be set to a fully-qualified Python module such as mysite.settings.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-settings-module",),
        "The settings module must be on sys.path and free of syntax errors.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-settings-module",),
        "DJANGO_SETTINGS_MODULE must point to a settings.json file.",
        N,
        "contradiction",
    ),
    (
        ("e517", "estop"),
        "E-517 means an emergency stop is engaged, and the robot stays stopped until RESUME is pressed.",
        Y,
        "merged",
    ),
    (
        ("loading",),
        "Loads above 450 kg are refused, and the maximum speed is 2.0 m/s.",
        N,
        "merged-half",
    ),
    (
        ("dj-license", "dj-nosql"),
        "Django is BSD-licensed, and NoSQL databases are not officially supported.",
        Y,
        "merged",
    ),
    # -- two rows shown together: one row's code, the other row's meaning ----------------------
    (
        ("e214", "e102"),
        "Error E-214 indicates a failure of the safety lidar communication.",
        N,
        "wrong-row",
    ),
    (("e102", "e214"), "E-102 means the drive motor is over temperature.", N, "wrong-row"),
    (("e330", "e517"), "E-330 means an emergency stop is engaged.", N, "wrong-row"),
    (("e214", "e102"), "E-214 means the drive motor is over temperature.", Y, "exact"),
    (("dock-faults", "dock-spec"), "D-02 means the mains voltage is out of range.", N, "wrong-row"),
    # -- one passage, another's claim ---------------------------------------------------------
    (("dj-license",), "Django models only support single-column primary keys.", N, "other-passage"),
    (("dj-nosql",), "Django is distributed under the 3-clause BSD license.", N, "other-passage"),
    (
        ("warranty",),
        "Unused products can be returned within 30 days of delivery.",
        N,
        "other-passage",
    ),
    (("e330",), "E-517 means an emergency stop is engaged.", N, "other-passage"),
    (("dock-faults",), "One dock can serve up to four robots.", N, "other-passage"),
    (("modes",), "Hold the power button for 3 seconds to start the robot.", N, "other-passage"),
    # -- second batch (2026-12-07) ---------------------------------------------------------------
    (
        ("dj-save-user",),
        "Customize the save_model() hook of ModelAdmin to record the user who edited an object.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-save-user",),
        "The current user can be taken from the request when the admin saves an object.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-save-user",),
        "ModelAdmin lets you transform an object as it is saved, using details from the request.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-save-user",),
        "Django stores the last editor of every object automatically, with no code needed.",
        N,
        "contradiction",
    ),
    (
        ("dj-save-user",),
        "Override the delete_model() hook to record who edited the object.",
        N,
        "contradiction",
    ),
    (
        ("dj-missing-objects",),
        "A record whose foreign key points to a nonexistent object is not shown in the admin changelist.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-missing-objects",),
        "Missing foreign key values can cause inconsistent row counts in the admin.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-missing-objects",),
        "The admin hides objects that were created by other users.",
        N,
        "contradiction",
    ),
    (
        ("dj-missing-objects",),
        "A foreign key field set to null=True causes the missing rows.",
        N,
        "contradiction",
    ),
    (
        ("dj-ugly-admin",),
        "You can change how the admin looks by editing its CSS stylesheet and image files.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-ugly-admin",),
        "The admin site is built with semantic HTML and many CSS hooks.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-ugly-admin",),
        "The admin's appearance cannot be changed without rewriting its Python code.",
        N,
        "contradiction",
    ),
    (
        ("dj-why-exist",),
        "Django was created at World Online, a newspaper Web operation.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-why-exist",),
        "Adrian Holovaty and Simon Willison switched from PHP to Python in fall 2003.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-why-exist",),
        "World Online released Django as open source in summer 2005.",
        Y,
        "paraphrase",
    ),
    (("dj-why-exist",), "World Online open-sourced Django in summer 2008.", N, "wrong-number"),
    (
        ("dj-why-exist",),
        "The World Online developers moved from Ruby to Python.",
        N,
        "contradiction",
    ),
    (
        ("dj-cite",),
        "When a publisher name is required, cite the Django Software Foundation.",
        Y,
        "paraphrase",
    ),
    (("dj-cite",), "The publishing location to use is Lawrence, Kansas.", Y, "paraphrase"),
    (("dj-cite",), "There is no official citation format for Django.", Y, "paraphrase"),
    (("dj-cite",), "The official citation format for Django is IEEE style.", N, "contradiction"),
    (("dj-cite",), "Use Chicago, Illinois as the publishing location.", N, "contradiction"),
    (
        ("dj-no-answer",),
        "The people answering on the help channels are volunteers.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-no-answer",),
        "Try making your question more specific or give a better example.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-no-answer",),
        "Support questions belong on the django-developers mailing list.",
        N,
        "contradiction",
    ),
    (
        ("dj-no-answer",),
        "Post your question in all three channels at once to get a faster answer.",
        N,
        "contradiction",
    ),
    (
        ("dj-prereqs",),
        "For development you do not need a separate web server or database server.",
        Y,
        "paraphrase",
    ),
    (("dj-prereqs",), "Django follows the WSGI specification, PEP 3333.", Y, "paraphrase"),
    (("dj-prereqs",), "PostgreSQL is the recommended database for production.", Y, "paraphrase"),
    (("dj-prereqs",), "Django follows the WSGI specification, PEP 8.", N, "wrong-number"),
    (
        ("dj-prereqs",),
        "Django requires a separate database server even for development.",
        N,
        "contradiction",
    ),
    (
        ("dj-which-python",),
        "The latest version of Python 3 is recommended for Django.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-which-python",),
        "Newer Python versions are often faster and better supported.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-which-python",),
        "Third-party Django applications may set their own version requirements.",
        Y,
        "paraphrase",
    ),
    (("dj-which-python",), "Python 2.7 is the recommended version for Django.", N, "wrong-number"),
    (
        ("dj-which-python",),
        "Using an older Python release makes Django lose features.",
        N,
        "contradiction",
    ),
    (
        ("dj-raw-sql",),
        "connection.queries lists the SQL statements Django ran, but only when DEBUG is True.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-raw-sql",),
        "Each entry of connection.queries has the raw SQL and the time it took in seconds.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-raw-sql",),
        "Call reset_queries() to clear the list of recorded queries.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-raw-sql",),
        "connection.queries is available even when DEBUG is False.",
        N,
        "contradiction",
    ),
    (("dj-raw-sql",), "Call clear_queries() to empty the query list.", N, "contradiction"),
    (
        ("dj-update-db",),
        "Django supports schema migrations for applying model changes to the database.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-update-db",),
        "manage.py flush resets the database to its state right after migrate.",
        Y,
        "paraphrase",
    ),
    (("dj-update-db",), "manage.py flush keeps all of your existing data.", N, "contradiction"),
    (
        ("dj-admin-path",),
        "If you installed Django with pip, django-admin should be on your path.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-admin-path",),
        "Activate your virtual environment, or run python -m django instead.",
        Y,
        "paraphrase",
    ),
    (("dj-admin-path",), "Reinstall Python to put django-admin on the path.", N, "contradiction"),
    (
        ("dj-unicode",),
        "A UnicodeDecodeError happens when a bytestring with non-ASCII bytes is decoded with the wrong encoding.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-unicode",),
        "A default ASCII locale, like the C locale, is a common cause of the error.",
        Y,
        "paraphrase",
    ),
    (("dj-unicode",), "Switch your system to a UTF-8 locale.", Y, "paraphrase"),
    (
        ("dj-unicode",),
        "A UnicodeDecodeError means the database server is down.",
        N,
        "contradiction",
    ),
    (
        ("dj-context-var",),
        "Use a RequestContext to make a variable available to all templates.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-context-var",),
        "Dynamically generated menus are a common example of something every template needs.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-context-var",),
        "The recommended way is to add a global dictionary to settings.py.",
        N,
        "contradiction",
    ),
    # -- third batch (2026-12-07, evening) ----------------------------------------------
    (("e810",), "E-810 means the payload is above 450 kg.", Y, "exact"),
    (("e810",), "For E-810, remove load until the total is at most 450 kg.", Y, "paraphrase"),
    (("e810",), "E-810 is raised when the payload exceeds 500 kg.", N, "wrong-number"),
    (("e810",), "E-810 means the load's center of gravity is out of limits.", N, "wrong-row"),
    (
        ("e810", "e811"),
        "E-810 means the load's center of gravity is out of limits.",
        N,
        "wrong-row",
    ),
    (("e810",), "E-810 is a critical error.", N, "contradiction"),
    (("e811",), "E-811 means the load's center of gravity is out of limits.", Y, "exact"),
    (
        ("e811",),
        "To clear E-811, re-stack the load so its center of gravity is no more than 600 mm above the deck.",
        Y,
        "paraphrase",
    ),
    (
        ("e811",),
        "To clear E-811, re-stack the load so that it overhangs by at most 100 mm.",
        N,
        "wrong-number",
    ),
    (
        ("e810", "e811"),
        "To clear E-811, remove load until the total is at most 450 kg.",
        N,
        "wrong-row",
    ),
    (("e810", "e811"), "E-811 is a warning about the load's center of gravity.", Y, "paraphrase"),
    (("e331",), "E-331 means the battery is above 55 °C.", Y, "paraphrase"),
    (
        ("e331",),
        "After an E-331, keep people away from the robot and contact support at once.",
        Y,
        "paraphrase",
    ),
    (
        ("e331",),
        "After an E-331, dock the robot so that the battery can cool down.",
        N,
        "contradiction",
    ),
    (("e331",), "E-331 is a battery cell voltage imbalance above 50 mV.", N, "wrong-row"),
    (("e405",), "E-405 means no charging current is detected.", Y, "exact"),
    (
        ("e405",),
        "For E-405, check the dock status LED, and if it blinks amber read the dock fault code in FleetOS.",
        Y,
        "paraphrase",
    ),
    (("e405",), "E-405 is a warning from the drive subsystem.", N, "contradiction"),
    (("e405",), "The dock fault codes run from D-01 to D-08.", N, "wrong-number"),
    (("e205",), "E-205 means wheel slip was detected.", Y, "exact"),
    (
        ("e205",),
        "When E-205 appears, check the floor for spills or dust and look at the wheel treads for wear.",
        Y,
        "paraphrase",
    ),
    (("e205",), "E-205 means the drive motor is over temperature.", N, "wrong-row"),
    (("e205",), "Firmware updates must be installed while the robot is docked.", N, "other-topic"),
    (
        ("safety-estops",),
        "Each robot has an e-stop button on each side and one on the operator pendant.",
        Y,
        "paraphrase",
    ),
    (
        ("safety-estops",),
        "E-stops are tested once a week and the test is recorded in the FleetOS maintenance log.",
        Y,
        "paraphrase",
    ),
    (("safety-estops",), "E-stops are tested once a month.", N, "wrong-number"),
    (
        ("safety-estops",),
        "A robot whose e-stop test fails may finish its shift before it is taken out of service.",
        N,
        "contradiction",
    ),
    (
        ("battery-work",),
        "Only Level 2 certified technicians may replace the battery pack NW-SP-3300.",
        Y,
        "paraphrase",
    ),
    (("battery-work",), "Any operator may open the battery compartment.", N, "contradiction"),
    (
        ("battery-work",),
        "A swollen battery goes to the outdoor quarantine area and is reported to Northwind support on the same day.",
        Y,
        "paraphrase",
    ),
    (
        ("battery-work",),
        "Only Level 3 certified technicians may open the battery compartment.",
        N,
        "wrong-number",
    ),
    (
        ("refunds",),
        "Refunds go to the original payment method within 10 business days after the goods pass inspection.",
        Y,
        "paraphrase",
    ),
    (("refunds",), "Refunds are issued within 30 business days.", N, "wrong-number"),
    (("refunds",), "Returned goods are inspected at the Tacoma service center.", Y, "paraphrase"),
    (("refunds",), "Refunds are paid as store credit.", N, "contradiction"),
    (("refunds",), "The AR7 carries up to 450 kg.", N, "other-topic"),
    (("rma",), "Every return needs an RMA number.", Y, "paraphrase"),
    (("rma",), "An RMA stays valid for 30 days.", Y, "paraphrase"),
    (("rma",), "An RMA is valid for 90 days.", N, "wrong-number"),
    (("rma",), "Packages without an RMA number on the outside are refused.", Y, "paraphrase"),
    (("rma",), "Goods without an RMA are accepted but processed more slowly.", N, "contradiction"),
    (
        ("daily-checks",),
        "Wipe both lidar windows with a dry, lint-free cloth before the first shift.",
        Y,
        "paraphrase",
    ),
    (("daily-checks",), "The replacement bumper strip is part NW-SP-1105.", Y, "paraphrase"),
    (("daily-checks",), "The replacement bumper strip is part NW-SP-1150.", N, "wrong-number"),
    (
        ("daily-checks",),
        "Wipe the lidar windows with isopropyl alcohol every day.",
        N,
        "contradiction",
    ),
    (
        ("daily-checks", "safety-estops"),
        "Both e-stop buttons are tested once a week, and a robot that fails the test is taken out of service.",
        Y,
        "merged",
    ),
    (
        ("shutdown",),
        "Hold the power button for 5 seconds, then turn the key switch to OFF.",
        Y,
        "paraphrase",
    ),
    (
        ("shutdown",),
        "Turning the key switch off while the robot moves engages the brakes at once, and the load may shift.",
        Y,
        "paraphrase",
    ),
    (
        ("shutdown",),
        "Hold the power button for 10 seconds to shut the robot down.",
        N,
        "wrong-number",
    ),
    (
        ("shutdown",),
        "The key switch can be turned off safely while the robot is moving.",
        N,
        "contradiction",
    ),
    (("requirements",), "RunnerOS 4.2 needs FleetOS 3.5 or later.", Y, "paraphrase"),
    (
        ("requirements",),
        "The update takes about 12 minutes and needs at least 40 % battery.",
        Y,
        "paraphrase",
    ),
    (("requirements",), "FleetOS 3.4 can manage robots on RunnerOS 4.2.", N, "contradiction"),
    (("requirements",), "Update the robot with at least 20 % battery.", N, "wrong-number"),
    (
        ("dj-remind",),
        "A polite, well-timed message to the mailing list is one way to get attention for a patch.",
        Y,
        "exact",
    ),
    (
        ("dj-remind",),
        "Posting right before a release deadline is unlikely to get you the attention you need.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-remind",),
        "Emailing core developers personally is the best way to get a patch reviewed.",
        N,
        "contradiction",
    ),
    (
        ("dj-remind",),
        "Grouping several related tickets together can help a patch get traction.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-limit-admin",),
        "get_queryset() and has_change_permission() control which objects a user can see and edit in the admin.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-limit-admin",),
        "The admin has no hooks for controlling who can edit an object.",
        N,
        "contradiction",
    ),
    (
        ("dj-limit-admin",),
        "The ModelAdmin class provides customization hooks for the visibility and editability of objects.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-customize-admin",),
        "You can attach JavaScript modules to the admin's add/change forms through the js parameter.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-customize-admin",),
        "You can write custom admin views that hook into the authentication system.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-customize-admin",),
        "The admin cannot be extended with custom views.",
        N,
        "contradiction",
    ),
    (
        ("dj-customize-admin",),
        "The js parameter is a dictionary of script names.",
        N,
        "contradiction",
    ),
    (
        ("dj-customize-admin", "dj-limit-admin"),
        "Custom admin views can check permissions, and has_change_permission() controls whether an object can be edited.",
        Y,
        "merged",
    ),
    # -- fourth batch (2026-12-07, night) -----------------------------------------------
    (("e101",), "E-101 means the lidar window is dirty or obstructed.", Y, "exact"),
    (
        ("e101",),
        "For E-101, wipe both lidar windows with a dry, lint-free cloth; the robot then carries on by itself.",
        Y,
        "paraphrase",
    ),
    (("e101",), "For E-101, clean the lidar windows with isopropyl alcohol.", N, "contradiction"),
    (("e101",), "E-101 is a critical lidar fault.", N, "contradiction"),
    (("e230",), "E-230 is a critical brake release failure of the drive.", Y, "paraphrase"),
    (
        ("e230",),
        "After an E-230, apply lockout/tagout and call a Level 2 certified technician.",
        Y,
        "exact",
    ),
    (("e230",), "After an E-230, push the robot out of the aisle.", N, "contradiction"),
    (("e230",), "An E-230 can be handled by a Level 1 technician.", N, "wrong-number"),
    (("e230", "e214"), "E-230 means the drive motor is over temperature.", N, "wrong-row"),
    (("e340",), "E-340 means the battery is below 15 %.", Y, "exact"),
    (
        ("e340",),
        "When E-340 appears, the robot goes to the nearest free dock on its own.",
        Y,
        "paraphrase",
    ),
    (("e340",), "E-340 means the battery is below 20 %.", N, "wrong-number"),
    (("e340",), "After an E-340, the operator must drive the robot to a dock.", N, "contradiction"),
    (("e340", "e331"), "E-340 means the battery is above 55 °C.", N, "wrong-row"),
    (("e701",), "E-701 is raised when the Wi-Fi signal falls below -75 dBm.", Y, "paraphrase"),
    (("e701",), "After an E-701, the robot completes its current mission.", Y, "paraphrase"),
    (("e701",), "After an E-701, the robot stops safely where it is.", N, "wrong-row"),
    (
        ("e701", "e702"),
        "E-701 means the FleetOS heartbeat was lost for more than 60 seconds.",
        N,
        "wrong-row",
    ),
    (
        ("e701", "e702"),
        "E-702 means FleetOS has not been heard from for over a minute, and the robot stops safely.",
        Y,
        "paraphrase",
    ),
    (("e702",), "For E-702, check the FleetOS server and the site network.", Y, "exact"),
    (("e702",), "E-702 is only a warning.", N, "contradiction"),
    (("e905",), "E-905 is a firmware checksum failure.", Y, "exact"),
    (
        ("e905",),
        "To fix E-905, reinstall RunnerOS from FleetOS while the robot is docked with at least 40 % battery.",
        Y,
        "paraphrase",
    ),
    (("e905",), "To fix E-905, reinstall RunnerOS with at least 20 % battery.", N, "wrong-number"),
    (
        ("e905", "firmware"),
        "Both a firmware update and the E-905 fix need the robot docked with at least 40 % battery.",
        Y,
        "merged",
    ),
    (("status-ring",), "A purple status ring means the robot is in MANUAL mode.", Y, "paraphrase"),
    (("status-ring",), "A blue ring means the robot is charging on a dock.", Y, "paraphrase"),
    (("status-ring",), "A yellow status ring means the robot has a fault.", N, "wrong-row"),
    (
        ("status-ring",),
        "A flashing red ring means a fault: read the error code on the pendant or in FleetOS.",
        Y,
        "paraphrase",
    ),
    (("status-ring",), "A green ring means the robot is in MANUAL mode.", N, "wrong-row"),
    (("firmware",), "A firmware update takes about 12 minutes.", Y, "exact"),
    (("firmware",), "The robot cannot be used while its firmware is updating.", Y, "paraphrase"),
    (
        ("firmware",),
        "The robot needs at least 60 % battery for a firmware update.",
        N,
        "wrong-number",
    ),
    (("firmware",), "RunnerOS 4.2 runs with FleetOS 3.4.", N, "contradiction"),
    (("firmware",), "Firmware is updated from the operator pendant.", N, "contradiction"),
    (("dock-led",), "A pulsing blue LED on the dock means a robot is charging.", Y, "exact"),
    (
        ("dock-led",),
        "If the dock's LED is off, the dock has no mains power, so check the breaker.",
        Y,
        "paraphrase",
    ),
    (("dock-led",), "A blinking amber LED means the robot is fully charged.", N, "wrong-row"),
    (
        ("dock-led",),
        "Solid green means the dock is idle and ready, or a docked robot is fully charged.",
        Y,
        "paraphrase",
    ),
    (("dock-site",), "The dock needs 1.2 m of free space in front of it.", Y, "exact"),
    (
        ("dock-site",),
        "The dock needs its own 16 A circuit, with the breaker no more than 2 m away.",
        Y,
        "paraphrase",
    ),
    (("dock-site",), "The dock needs 0.5 m of free space on each side.", N, "wrong-number"),
    (("dock-site",), "The floor under the dock must slope by less than 1 %.", Y, "paraphrase"),
    (
        ("dock-site",),
        "The dock position needs a Wi-Fi signal of at least -75 dBm.",
        N,
        "wrong-number",
    ),
    (
        ("lockout",),
        "Before any maintenance beyond the daily checks, the technician applies lockout/tagout.",
        Y,
        "exact",
    ),
    (
        ("lockout",),
        "For lockout/tagout the key is taken out and a personal lock and tag go on the battery isolator.",
        Y,
        "paraphrase",
    ),
    (("lockout",), "Lockout/tagout is only needed for battery work.", N, "contradiction"),
    (("lockout",), "For lockout/tagout, switch the robot to MANUAL mode.", N, "contradiction"),
    (
        ("training",),
        "Operators take the 4-hour Northwind Safe Operator course every 12 months.",
        Y,
        "paraphrase",
    ),
    (
        ("training",),
        "The Level 2 Technician course lasts 3 days and is renewed every 24 months.",
        Y,
        "paraphrase",
    ),
    (("training",), "Operators renew their training every 24 months.", N, "wrong-row"),
    (("training",), "The Level 2 Technician course takes 4 hours.", N, "wrong-row"),
    (
        ("new-features",),
        "Quiet mode limits robots to 0.8 m/s and mutes the reversing beeper during night shifts.",
        Y,
        "paraphrase",
    ),
    (("new-features",), "In quiet mode the status ring is switched off.", N, "contradiction"),
    (("new-features",), "Docking is 20 % faster in RunnerOS 4.2.0.", Y, "paraphrase"),
    (("new-features",), "Quiet mode limits robots to 1.2 m/s.", N, "wrong-number"),
    (
        ("new-features",),
        "Before a mission the robot weighs its load with the deck load cells.",
        Y,
        "paraphrase",
    ),
    (("support",), "Premium support gives a first response within 4 hours.", Y, "paraphrase"),
    (("support",), "Standard support is included for the first 24 months.", Y, "exact"),
    (("support",), "Standard support answers around the clock, every day.", N, "contradiction"),
    (
        ("support",),
        "With Premium support a field technician is on site within 24 hours.",
        N,
        "wrong-number",
    ),
    (
        ("support",),
        "Stocked spare parts ship from Seattle within 2 business days.",
        N,
        "contradiction",
    ),
    (("support",), "Premium customers get expedited overnight shipping for free.", Y, "paraphrase"),
    (
        ("upgrade",),
        "Upgrade FleetOS to 3.5 or later before upgrading robots to RunnerOS 4.2.",
        Y,
        "paraphrase",
    ),
    (("upgrade",), "Robots update one at a time so that the fleet keeps working.", Y, "exact"),
    (("upgrade",), "All robots of the fleet update at the same time.", N, "contradiction"),
    (
        ("upgrade", "firmware"),
        'With "Update when docked", each robot in turn is unavailable for about 12 minutes.',
        Y,
        "merged",
    ),
    (
        ("dj-scratch",),
        "Django was written from scratch because none of the existing Python web frameworks were good enough for its authors.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-scratch",),
        "Adrian and Simon explored the Python web frameworks available before writing Django.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-scratch",),
        "Django integrated outside open-source libraries whenever it found them.",
        N,
        "contradiction",
    ),
    (
        ("dj-scratch",),
        "Django's authors call themselves perfectionists with deadlines.",
        Y,
        "paraphrase",
    ),
    (("dj-ready",), "You cannot mark your own ticket as Ready For Checkin.", Y, "paraphrase"),
    (
        ("dj-ready",),
        "Another person should look at a ticket before it is marked Ready For Checkin.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-ready",),
        "You may mark your own ticket Ready For Checkin when it is perfect.",
        N,
        "contradiction",
    ),
    (("dj-legacy",), "Django can be used with a pre-existing database.", Y, "exact"),
    (("dj-legacy",), "Django cannot work with legacy databases.", N, "contradiction"),
    # -- fifth batch (2026-12-07, night) ------------------------------------------------
    (
        ("e520",),
        "E-520 means the safety field has been blocked for more than 30 seconds.",
        Y,
        "exact",
    ),
    (
        ("e520",),
        "For E-520, clear the robot's path and look for pallets or objects left in the aisle.",
        Y,
        "paraphrase",
    ),
    (
        ("e520",),
        "E-520 means the safety field was blocked for more than 60 seconds.",
        N,
        "wrong-number",
    ),
    (("e520",), "E-520 is a critical safety fault.", N, "contradiction"),
    (("e520", "e620"), "E-520 means the map does not match the site.", N, "wrong-row"),
    (("e620",), "E-620 means there is a map mismatch.", Y, "exact"),
    (
        ("e620",),
        "After an E-620, re-map the affected zone in the FleetOS Map Editor, because racks or walls may have moved.",
        Y,
        "paraphrase",
    ),
    (("e620",), "After an E-620, reboot the robot and the map is reloaded.", N, "contradiction"),
    (("e620", "e520"), "For E-620, clear the robot's path.", N, "wrong-row"),
    (
        ("controls",),
        "The key switch and the power button are on the AR7's rear panel.",
        Y,
        "paraphrase",
    ),
    (("controls",), "The AR7 has two red e-stop buttons, one on each side.", Y, "paraphrase"),
    (("controls",), "The AR7 has four e-stop buttons.", N, "wrong-number"),
    (("controls",), "The power button is on the front panel.", N, "contradiction"),
    (
        ("dock-commissioning",),
        'To teach the dock position, drive a robot onto the dock in MANUAL mode and press "Save dock pose".',
        Y,
        "paraphrase",
    ),
    (("dock-commissioning",), "FleetOS stores the dock pose to within 10 mm.", Y, "paraphrase"),
    (("dock-commissioning",), "FleetOS stores the dock pose to within 1 mm.", N, "wrong-number"),
    (("dock-commissioning",), "The dock position is taught in AUTO mode.", N, "contradiction"),
    (
        ("dock-anchoring",),
        "The dock is fixed to the floor with the four M10 anchor bolts supplied, tightened to 40 N·m.",
        Y,
        "exact",
    ),
    (
        ("dock-anchoring",),
        "A dock that is not anchored moves when robots dock and causes repeated E-402 docking failures.",
        Y,
        "paraphrase",
    ),
    (("dock-anchoring",), "Tighten the anchor bolts to 60 N·m.", N, "wrong-number"),
    (("dock-anchoring",), "The dock is fixed with two M8 bolts.", N, "wrong-number"),
    (("dock-anchoring",), "An unanchored dock causes E-405 charging errors.", N, "wrong-row"),
    (
        ("dock-pads",),
        "Switch off the dock's breaker before you touch its contact pads.",
        Y,
        "exact",
    ),
    (
        ("dock-pads",),
        "The contact pads may be cleaned while the dock is powered.",
        N,
        "contradiction",
    ),
    (
        ("known-issues",),
        "On FleetOS 3.5.0 the quiet-mode schedule does not follow daylight saving time.",
        Y,
        "paraphrase",
    ),
    (
        ("known-issues",),
        "The daylight saving problem of the quiet-mode schedule is fixed in FleetOS 3.5.1.",
        Y,
        "paraphrase",
    ),
    (
        ("known-issues",),
        "The quiet-mode schedule problem is fixed in FleetOS 3.6.",
        N,
        "wrong-number",
    ),
    (("products",), "The AR7's part number is NW-AR7-0450.", Y, "exact"),
    (
        ("products",),
        "The operator pendant is a handheld controller for MANUAL mode.",
        Y,
        "paraphrase",
    ),
    (
        ("products",),
        "FleetOS assigns missions, keeps the site map and distributes firmware updates.",
        Y,
        "paraphrase",
    ),
    (("products",), "The CD-2 charging dock has part number NW-PD-0100.", N, "wrong-row"),
    (("products",), "The AR7 carries payloads of up to 600 kg.", N, "wrong-number"),
    (("products",), "The AR7 runs the FleetOS firmware.", N, "contradiction"),
    (
        ("nw-training",),
        "Every operator must pass the 4-hour Northwind Safe Operator course before working with AR7 robots.",
        Y,
        "paraphrase",
    ),
    (
        ("nw-training",),
        "Technicians who open the battery compartment need the Level 2 Technician certification.",
        Y,
        "paraphrase",
    ),
    (
        ("nw-training",),
        "The Level 2 Technician course is held in Tacoma or on site.",
        Y,
        "paraphrase",
    ),
    (("nw-training",), "The operator certificate is renewed every 24 months.", N, "wrong-number"),
    (("nw-training",), "The Level 2 Technician course is only offered online.", N, "contradiction"),
    (
        ("dj-mvc",),
        "In Django, a view describes which data is presented, and a template describes how it is presented.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-mvc",),
        "Django could be called an MTV framework: model, template and view.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-mvc",),
        "In Django's case the controller is probably the framework itself, which sends a request to the right view.",
        Y,
        "paraphrase",
    ),
    (("dj-mvc",), "In Django the template decides which data is presented.", N, "contradiction"),
    (("dj-mvc",), "Django uses the standard MVC names.", N, "contradiction"),
    (
        ("dj-reminded",),
        "Bugs that may affect many people usually get priority over edge cases.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-reminded",),
        "If a patch has no chance of being included in Django, the ticket is closed.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-reminded",),
        "The Django team would rather make 10 people happy than a single person.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-reminded",),
        "Bugs are fixed in the order in which their tickets were opened.",
        N,
        "contradiction",
    ),
    (("dj-reminded",), "The team would rather make 100 people happy than one.", N, "wrong-number"),
    (
        ("dj-get-started",),
        "To get started, download the code, install Django and walk through the tutorial.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-get-started",),
        "To get started, you must first read the whole reference documentation.",
        N,
        "contradiction",
    ),
    (("dj-sites",), "DjangoSites.org lists Django-powered sites.", Y, "paraphrase"),
    (("dj-sites",), "Django's website lists every company that uses Django.", N, "contradiction"),
    # -- sixth batch (2026-12-07, late night) -------------------------------------------
    (("about",), "Northwind Robotics was founded in 2016 in Tacoma, Washington.", Y, "exact"),
    (
        ("about",),
        "Northwind has installed more than 3,100 robots at 180 customer sites.",
        Y,
        "paraphrase",
    ),
    (
        ("about",),
        "Northwind builds autonomous mobile robots for warehouses and food-processing plants.",
        Y,
        "paraphrase",
    ),
    (("about",), "Northwind Robotics was founded in 2018.", N, "wrong-number"),
    (("about",), "Northwind employs about 3,100 people.", N, "recombined"),
    (("about",), "Northwind's spare-parts warehouse is in Seattle.", N, "contradiction"),
    (("about",), "Northwind has installed robots at 240 customer sites.", N, "recombined"),
    (
        ("ticket-21004",),
        "At Cascade Parcel Services, 14 robots reported frequent E-618 warnings after upgrading to RunnerOS 4.1.3.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21004",),
        "Upgrading to RunnerOS 4.2.1 fixed the false E-618 warnings.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21004",),
        "The E-618 warnings appeared mostly near the reflective dock doors.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21004",),
        "The E-618 warnings were fixed by re-mapping the site.",
        N,
        "contradiction",
    ),
    (("ticket-21004",), "RunnerOS 4.1.3 fixes the false E-618 warnings.", N, "recombined"),
    (
        ("ticket-21122",),
        "At Harbor Cold Storage, the CD-2 dock blinked amber with fault D-02, a contact pad short circuit.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21122",),
        "Metal shavings from a nearby cutting station had got onto the contact pads.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21122",),
        "The pads were cleaned with isopropyl alcohol and one worn pad set was replaced.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21122",),
        "The dock was moved 10 m away from the cutting station.",
        N,
        "wrong-number",
    ),
    (("ticket-21122",), "The cutting station was moved away from the dock.", N, "recombined"),
    (("ticket-21122",), "The dock showed fault D-04.", N, "wrong-number"),
    (("ticket-21477",), "The AR7 is rated for 0 to 40 °C only.", Y, "exact"),
    (
        ("ticket-21477",),
        "At Harbor Cold Storage, robots failed to start in the -5 °C freezer area.",
        Y,
        "paraphrase",
    ),
    (("ticket-21477",), "Missions into the freezer were limited to 10 minutes.", Y, "paraphrase"),
    (
        ("ticket-21477",),
        "Between freezer runs the robot was parked in the 4 °C ante-room.",
        Y,
        "paraphrase",
    ),
    (("ticket-21477",), "The AR7 is rated down to -5 °C.", N, "contradiction"),
    (
        ("ticket-21477",),
        "Northwind released a cold-rated model for the freezer.",
        N,
        "contradiction",
    ),
    (("ticket-21477",), "Missions into the freezer were limited to 4 minutes.", N, "recombined"),
    (
        ("ticket-21260",),
        "At Pinecrest Pharma, robots stopped in aisle 12 with E-702.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21260",),
        "A failed access point in aisle 12 let the Wi-Fi signal drop below -80 dBm.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21260",),
        "Northwind recommends a Wi-Fi survey after any rack layout change.",
        Y,
        "exact",
    ),
    (
        ("ticket-21260",),
        "Northwind's field technician replaced the access point.",
        N,
        "contradiction",
    ),
    (("ticket-21260",), "The robots stopped in aisle 80.", N, "recombined"),
    (
        ("ticket-21260", "e702"),
        "At Pinecrest Pharma the FleetOS heartbeat was lost, and with E-702 the robot stops safely where it is.",
        Y,
        "merged",
    ),
    (("release-421",), "RunnerOS 4.2.1 is recommended for all AR7 robots.", Y, "paraphrase"),
    (("release-421",), "RunnerOS 4.2.1 was released on 12 August 2024.", Y, "exact"),
    (("release-421",), "RunnerOS 4.2.1 was released on 3 June 2024.", N, "wrong-number"),
    (
        ("release-421",),
        "RunnerOS 4.2.1 is recommended only for robots that use quiet mode.",
        N,
        "other-topic",
    ),
    (
        ("dj-framework-x",),
        "Django's developers do not mind borrowing ideas from other web frameworks where appropriate.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-framework-x",),
        "That another framework has a feature is not enough reason to add it to Django.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-framework-x",),
        "Django adds any feature that another popular framework has.",
        N,
        "contradiction",
    ),
    (
        ("dj-framework-x",),
        "Django was developed because its authors were happy with the status quo.",
        N,
        "recombined",
    ),
    (
        ("dj-help",),
        "Before asking, check whether the FAQ answers your question and search for answers.",
        Y,
        "paraphrase",
    ),
    (("dj-help",), "The django-users mailing list is for email-based discussions.", Y, "exact"),
    (("dj-help",), "The #django IRC channel is on the Libera.Chat network.", Y, "paraphrase"),
    (
        ("dj-help",),
        "In every channel you should follow the Django Code of Conduct.",
        Y,
        "paraphrase",
    ),
    (("dj-help",), "The Django Forum is for chat-based discussions.", N, "recombined"),
    (("dj-help",), "The django-users mailing list is on the Libera.Chat network.", N, "recombined"),
    # -- seventh batch (2026-12-07, last) -----------------------------------------------
    (
        ("spec-performance",),
        "The AR7's top speed is 2.0 m/s unloaded and 1.5 m/s at full payload.",
        Y,
        "paraphrase",
    ),
    (
        ("spec-performance",),
        "In shared zones the AR7 is limited to 1.0 m/s by site policy.",
        Y,
        "paraphrase",
    ),
    (
        ("spec-performance",),
        "The AR7 positions itself to within 10 mm at docks and stations.",
        Y,
        "paraphrase",
    ),
    (("spec-performance",), "The AR7 can drive on floor slopes of up to 3 %.", Y, "paraphrase"),
    (("spec-performance",), "The AR7 can cross a 20 mm gap and a 10 mm step.", Y, "exact"),
    (("spec-performance",), "The AR7's top speed at full payload is 2.0 m/s.", N, "recombined"),
    (
        ("spec-performance",),
        "Along routes the AR7 positions itself to within 10 mm.",
        N,
        "recombined",
    ),
    (("spec-performance",), "The AR7 brakes at up to 0.8 m/s2.", N, "recombined"),
    (("spec-performance",), "The AR7 needs a wide turning circle.", N, "contradiction"),
    (
        ("spec-sensors",),
        "The AR7 has two 270-degree safety lidars, at the front-left and rear-right corners.",
        Y,
        "paraphrase",
    ),
    (("spec-sensors",), "The safety lidars are PL d / SIL 2 certified.", Y, "exact"),
    (
        ("spec-sensors",),
        "The AR7 has an emergency stop on each side plus one on the operator pendant.",
        Y,
        "paraphrase",
    ),
    (("spec-sensors",), "The AR7 is quieter than 55 dB(A) at 1 m.", Y, "paraphrase"),
    (("spec-sensors",), "The AR7 has four safety lidars.", N, "wrong-number"),
    (("spec-sensors",), "The safety lidar's part number is NW-SP-1105.", N, "wrong-row"),
    (("spec-sensors",), "The 3D camera is at the rear of the robot.", N, "contradiction"),
    (("spec-environment",), "The AR7 operates between 0 and 40 degrees C.", Y, "paraphrase"),
    (("spec-environment",), "The AR7 is rated IP54.", Y, "paraphrase"),
    (
        ("spec-environment",),
        "The AR7 tolerates 10 to 90 % non-condensing humidity.",
        Y,
        "paraphrase",
    ),
    (("spec-environment",), "The AR7 can run on wet floors.", N, "contradiction"),
    (("spec-environment",), "The AR7 works at a humidity of up to 40 %.", N, "recombined"),
    (
        ("ticket-20931",),
        "At Lakeside Foods, shrink wrap wound around the left drive wheel hub caused repeated E-214 errors.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-20931",),
        "The field technician replaced the left drive wheel module NW-SP-2210.",
        Y,
        "exact",
    ),
    (("ticket-20931",), "The customer added shrink-wrap removal to the daily checks.", Y, "exact"),
    (("ticket-20931",), "The right drive wheel module was replaced.", N, "contradiction"),
    (("ticket-20931",), "E-214 occurred three times in one week.", N, "contradiction"),
    (
        ("ticket-21318",),
        "An 8-hour balancing charge cleared the E-330 warning on robot AR7-22-01190.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21318",),
        "The battery pack had done 1,420 cycles and is still under warranty.",
        Y,
        "paraphrase",
    ),
    (("ticket-21318",), "The battery pack was at 12 cycles.", N, "recombined"),
    (("ticket-21318",), "The battery pack was replaced under warranty.", N, "contradiction"),
    (("ticket-21318",), "A 12-hour balancing charge cleared the warning.", N, "recombined"),
    (
        ("ticket-21402",),
        "Summit Outdoor Gear asked to return two unused AR7 robots delivered 18 days earlier.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21402",),
        "The return carries a 15 % restocking fee under policy NR-POL-014.",
        Y,
        "paraphrase",
    ),
    (("ticket-21402",), "Support issued RMA-2024-00417.", Y, "exact"),
    (("ticket-21402",), "Northwind pays the return shipping.", N, "contradiction"),
    (("ticket-21402",), "The robots had been delivered 15 days earlier.", N, "recombined"),
    (
        ("ticket-21533",),
        "At Cascade Parcel Services the dock had been re-installed without its anchor bolts after a floor renovation.",
        Y,
        "paraphrase",
    ),
    (
        ("ticket-21533",),
        "The dock was anchored with four M10 bolts at 40 N·m and its pose re-taught in the FleetOS Map Editor.",
        Y,
        "exact",
    ),
    (("ticket-21533",), "The docking failures at dock 3 were E-405 errors.", N, "wrong-row"),
    (("ticket-21533",), "The dock was anchored with three M10 bolts.", N, "wrong-number"),
    (("ticket-21533",), "The dock was anchored with four M10 bolts at 3 N·m.", N, "recombined"),
    (
        ("ticket-21533", "dock-anchoring"),
        "An unanchored dock causes repeated E-402 docking failures, as at Cascade Parcel Services' dock 3.",
        Y,
        "merged",
    ),
    # -- eighth batch (2026-12-08) ------------------------------------------------------
    (
        ("spec-connectivity",),
        "The AR7 connects to Wi-Fi over 802.11ac on the 5 GHz band, using WPA2-Enterprise.",
        Y,
        "paraphrase",
    ),
    (
        ("spec-connectivity",),
        "According to the specification, RunnerOS 4.2 requires FleetOS 3.5 or later for fleet management.",
        Y,
        "paraphrase",
    ),
    (("spec-connectivity",), "The AR7's Wi-Fi works on the 2.4 GHz band.", N, "wrong-number"),
    (
        ("spec-connectivity",),
        "Fleet management requires FleetOS 4.2.1 or later.",
        N,
        "recombined",
    ),
    (
        ("spec-connectivity",),
        "FleetOS is optional for robots running RunnerOS 4.2.",
        N,
        "contradiction",
    ),
    (("spec-spare-parts",), "The operator pendant has part number NW-PD-0100.", Y, "paraphrase"),
    (
        ("spec-spare-parts",),
        "The AR7 has a drive wheel module on each side, part NW-SP-2210.",
        Y,
        "paraphrase",
    ),
    (("spec-spare-parts",), "The bumper strip spare part is NW-SP-1105.", Y, "paraphrase"),
    (
        ("spec-spare-parts",),
        "The battery pack's spare part number is NW-SP-4410.",
        N,
        "wrong-row",
    ),
    (("spec-spare-parts",), "Each AR7 has three drive wheel modules.", N, "wrong-number"),
    (
        ("pm-header",),
        "Maintenance intervals are in operating hours, as shown in FleetOS under Fleet > Robot > Counters.",
        Y,
        "paraphrase",
    ),
    (
        ("pm-header",),
        "The preventive maintenance schedule is document NW-DOC-AR7-OM.",
        N,
        "wrong-row",
    ),
    (("pm-header",), "The AR7 robot's part number is NW-DOC-AR7-PM.", N, "recombined"),
    (
        ("pm-wear-limits",),
        "Replace the drive wheel module NW-SP-2210 when the tread depth is below 3 mm at any point.",
        Y,
        "paraphrase",
    ),
    (
        ("pm-wear-limits",),
        "A typical AR7 in two-shift operation runs about 4,000 operating hours per year.",
        Y,
        "exact",
    ),
    (
        ("pm-wear-limits",),
        "According to the schedule, warranty claims under NR-POL-014 need a complete maintenance log in FleetOS.",
        Y,
        "paraphrase",
    ),
    (
        ("pm-wear-limits",),
        "Replace the drive wheel module when the tread depth is below 5 mm.",
        N,
        "wrong-number",
    ),
    (
        ("pm-wear-limits",),
        "A typical AR7 in two-shift operation needs a new drive wheel module every 4,000 operating hours.",
        N,
        "recombined",
    ),
    (
        ("pm-wear-limits",),
        "A tread with cracks can stay in service as long as it is deeper than 3 mm.",
        N,
        "contradiction",
    ),
    (
        ("manual-intro",),
        "Read the safety policy NR-SAF-002 before you operate the robot.",
        Y,
        "paraphrase",
    ),
    (
        ("manual-intro",),
        "The operator manual applies to AR7 robots running RunnerOS 3.x.",
        N,
        "wrong-number",
    ),
    (("manual-intro",), "Safety policy NR-SAF-002 is at revision F.", N, "recombined"),
    (
        ("dock-intro",),
        "The CD-2 charges AR7 robots automatically through two spring-loaded copper contact pads.",
        Y,
        "exact",
    ),
    (
        ("dock-intro",),
        "A robot drives to the dock by itself when its battery drops below the FleetOS threshold, which is 25 % by default.",
        Y,
        "paraphrase",
    ),
    (
        ("dock-intro",),
        "By default a robot goes to the dock when its battery drops below 20 %.",
        N,
        "wrong-number",
    ),
    (
        ("dock-intro",),
        "A robot only drives onto the dock when its battery is below 25 % and it has no mission.",
        N,
        "recombined",
    ),
    (("dock-intro",), "The CD-2 dock's part number is NW-SP-5120.", N, "wrong-row"),
    (
        ("returns-intro",),
        "The returns and warranty policy NR-POL-014, version 3.1, has been effective since 1 March 2024.",
        Y,
        "paraphrase",
    ),
    (("returns-intro",), "The returns policy NR-POL-014 is version 2.4.", N, "wrong-row"),
    (
        ("returns-questions",),
        "If you have questions about the policy, contact Northwind customer support and quote policy number NR-POL-014.",
        Y,
        "paraphrase",
    ),
    (
        ("returns-questions",),
        "For questions about returns, quote the policy number NR-SAF-002 to customer support.",
        N,
        "wrong-row",
    ),
    (
        ("safety-intro",),
        "The safety policy NR-SAF-002 is owned by the Northwind Health & Safety team.",
        Y,
        "paraphrase",
    ),
    (
        ("safety-intro",),
        "The safety policy applies to every site where AR7 robots operate, including customer sites during installation and service.",
        Y,
        "paraphrase",
    ),
    (
        ("safety-intro",),
        "The safety policy does not apply to customer sites while the robots are being installed.",
        N,
        "contradiction",
    ),
    (
        ("safety-intro",),
        "The Northwind Health & Safety team installs and services the AR7 robots at customer sites.",
        N,
        "recombined",
    ),
    (("release-intro",), "RunnerOS is the firmware of the AR7 robot.", Y, "exact"),
    (("release-intro",), "Updates to RunnerOS are installed from FleetOS.", Y, "paraphrase"),
    (
        ("release-intro",),
        "RunnerOS updates are installed from a USB stick plugged into the robot.",
        N,
        "contradiction",
    ),
    (("release-intro",), "FleetOS is the firmware of the AR7 robot.", N, "recombined"),
    (
        ("dj-ignored-patch",),
        "Everyone who works on Django is a volunteer, so the time they can spend on it varies from week to week.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-ignored-patch",),
        "If a patch has no chance of being included in Django, the ticket is closed instead of being ignored.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-ignored-patch",),
        "A patch should include a unit test, or else a very clear explanation of why it doesn't.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-ignored-patch",),
        "Django's developers are paid to work on the framework full time.",
        N,
        "contradiction",
    ),
    (
        ("dj-ignored-patch",),
        "Django's ticket system has only about a dozen open tickets.",
        N,
        "wrong-number",
    ),
    (("dj-ignored-patch",), "Pillow is one of Django's contrib modules.", N, "recombined"),
    (
        ("dj-mod-wsgi",),
        "When the admin CSS and images don't show up under mod_wsgi, see serving the admin files in the “How to use Django with mod_wsgi” documentation.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-mod-wsgi",),
        "If the admin CSS is missing under mod_wsgi, run collectstatic and set STATIC_ROOT.",
        N,
        "other-topic",
    ),
    (
        ("dj-bug",),
        "Detailed instructions for handling a potential bug are in the Guide to contributing to Django.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-bug",),
        "If you think you've found a bug, report it by email to security@djangoproject.com.",
        N,
        "wrong-row",
    ),
    (
        ("dj-contrib-start",),
        "To get started contributing code, read the document titled Contributing to Django.",
        Y,
        "paraphrase",
    ),
    (
        ("dj-contrib-start",),
        "Django has no document explaining how to start contributing code.",
        N,
        "contradiction",
    ),
    (
        ("release-intro", "spec-connectivity"),
        "RunnerOS, the AR7's firmware, is currently at release 4.2.1.",
        Y,
        "merged",
    ),
    (
        ("spec-spare-parts", "pm-wear-limits"),
        "The operator pendant is part NW-PD-0100, and the battery pack should be replaced when its capacity in FleetOS is below 80 percent.",
        Y,
        "merged",
    ),
    (
        ("returns-intro", "pm-wear-limits"),
        "Policy NR-POL-014, effective 1 March 2024, requires a complete maintenance log for warranty claims.",
        Y,
        "merged",
    ),
    (
        ("manual-intro", "safety-intro"),
        "Before operating the robot, read safety policy NR-SAF-002, which is owned by the Northwind Health & Safety team.",
        Y,
        "merged",
    ),
    (
        ("dj-bug", "dj-contrib-start"),
        "Instructions for handling a potential bug are in the Guide to contributing to Django, and a whole document titled Contributing to Django covers how to start contributing code.",
        Y,
        "merged",
    ),
    (
        ("release-intro", "spec-connectivity"),
        "RunnerOS 4.2.1, the current AR7 firmware, was released on 12 August 2024.",
        N,
        "merged-half",
    ),
    (
        ("dock-intro", "spec-spare-parts"),
        "The CD-2 dock charges through two copper contact pads, and the pad set NW-SP-5120 must be replaced every 24 months.",
        N,
        "merged-half",
    ),
]


# Claims taken verbatim from real answers of the bundled model (SmolLM2-135M: base,
# fine-tuned, RAG, RAFT) in the FAQ evaluations, labelled by hand against the FAQ entry that
# answers the question; each batch written blind, before any scoring. The batch is given
# here (the passage may be an older one); each pair stays in its passage's split.
# (passage id, the strategy whose answer holds the sentence, claim, supported)
MODEL_CLAIMS: dict[int, list[tuple[str, str, str, bool]]] = {}
# Ninth batch (2026-12-08): the Django FAQ evaluation's held-out questions. Every section
# they ask about is already a passage above.
MODEL_CLAIMS[9] = [
    ("dj-nosql", "rag@generate", "Django does not support NoSQL databases.", Y),
    (
        "dj-nosql",
        "raft+rag@generate",
        "We try to avoid adding special cases in the Django code to accommodate all the database-specific options such as table type, etc.",
        N,
    ),
    (
        "dj-staff",
        "base",
        "This error typically occurs when you enter a username and password that is not valid.",
        N,
    ),
    (
        "dj-staff",
        "raft-random+rag@generate",
        "When you enter a valid username and password, it brings up the login page again, with a “Please enter a correct username and password” error.",
        N,
    ),
    ("dj-cite", "base", "Django is a Python framework developed by Django.com.", N),
    (
        "dj-cite",
        "finetuned",
        "You can cite Django in your Django documentation, which is located in the Django documentation.",
        N,
    ),
    (
        "dj-cite",
        "raft+rag@generate",
        "It’s difficult to give an official citation format, for two reasons: citation formats can vary wildly between publications, and citation standards for software are still a matter of some debate.",
        Y,
    ),
    ("dj-ready", "finetuned", "No, your ticket is not ready for checkin.", N),
    (
        "dj-ready",
        "raft+rag@generate",
        "If you’re having trouble getting that second set of eyes, see questions above.",
        Y,
    ),
    (
        "dj-ready",
        "rag+finetuned@generate",
        "The ticket’s status is “Not ready for checkout”, which is a bug.",
        N,
    ),
    ("dj-ready", "rag@generate", "No.", Y),
    ("dj-python-version", "rag@generate", "Django 1.8.1 is the latest version of Django.", N),
    (
        "dj-python-version",
        "rag+finetuned@generate",
        "The answer to this question is that you should use the stable version of Django.",
        N,
    ),
    (
        "dj-python-version",
        "raft+rag@generate",
        "2.2 | 3.5, 3.6, 3.7, 3.8, 3.9 (added in 2.2.17)",
        Y,
    ),
    ("dj-python-version", "raft+rag@generate", "3.0 | 3.6, 3.7, 3.8, 3.9 (added in 3.0.11)", Y),
    (
        "dj-remind",
        "finetuned",
        "When you need to remind the team of a patch you care about, please send a message to the team’s email address.",
        N,
    ),
    (
        "dj-remind",
        "raft+rag@generate",
        "A polite, well-timed message to the mailing list is one way to get attention.",
        Y,
    ),
    (
        "dj-remind",
        "rag@generate",
        "Gentle IRC reminders can also work – again, strategically timed if possible.",
        Y,
    ),
    (
        "dj-cookie",
        "base",
        "To resolve this issue, you can try to log in to your account using a different username and password.",
        N,
    ),
    (
        "dj-cookie",
        "raft+rag@generate",
        "The login cookie isn’t being set correctly, because the domain of the cookie sent out by Django doesn’t match the domain in your browser.",
        Y,
    ),
    (
        "dj-cookie",
        "raft+rag@generate",
        "Try setting the SESSION_COOKIE_DOMAIN setting to match your domain.",
        Y,
    ),
    (
        "dj-cookie",
        "raft+rag@generate",
        "Django doesn’t allow you to set a field’s value to the user who last edited the object in the admin. [1]",
        N,
    ),
    (
        "dj-offline-docs",
        "finetuned",
        "You can download the Django documentation from the official Django Documentation website.",
        N,
    ),
    (
        "dj-offline-docs",
        "raft+rag@generate",
        "Django documentation is available in the docs directory of each Django tarball release.",
        Y,
    ),
    (
        "dj-offline-docs",
        "raft+rag@generate",
        "These docs are in reST (reStructuredText) format, and each text file corresponds to a Web page on the official Django site.",
        Y,
    ),
    (
        "dj-offline-docs",
        "rag@generate",
        "The documentation is generated from the latest development versions of the Django code.",
        N,
    ),
    ("dj-model-layer", "finetuned", "No, you don't need to use your model/database layer.", Y),
    (
        "dj-model-layer",
        "finetuned",
        "You can use the model/database layer directly from the API.",
        N,
    ),
    (
        "dj-model-layer",
        "raft-random+rag@generate",
        "You don’t have to use your model/database layer. [1]",
        Y,
    ),
    (
        "dj-model-layer",
        "rag+finetuned@generate",
        "The reason for this is that Django’s database layer is designed to be decoupled from the rest of the framework.",
        Y,
    ),
    ("dj-model-layer", "rag@generate", "Yes, you do have to use your model/database layer.", N),
    (
        "dj-customize-admin",
        "finetuned",
        "You can customize the functionality of the admin interface by modifying the settings in the admin.html file.",
        N,
    ),
    (
        "dj-customize-admin",
        "raft-random+rag@generate",
        "If you want to piggyback on top of an add/change form that Django automatically generates, you can attach arbitrary JavaScript modules to the page via the model’s class Admin js parameter.",
        Y,
    ),
    (
        "dj-customize-admin",
        "raft-random+rag@generate",
        "That parameter is a list of URLs, as strings, pointing to JavaScript modules that will be included within the admin form via a <script> tag.",
        Y,
    ),
    (
        "dj-customize-admin",
        "raft+rag@generate",
        "The Django admin is powered by Django itself, and its interfaces use Django’s own template system.",
        N,
    ),
    (
        "dj-security",
        "finetuned",
        "If you’ve found a security problem, you’ll want to contact the company’s security team immediately.",
        N,
    ),
    (
        "dj-security",
        "raft-random+rag@generate",
        "If you think you’ve found a security problem with Django, please send a message to security@djangoproject.com.",
        Y,
    ),
    (
        "dj-security",
        "raft-random+rag@generate",
        "This is a private list only open to long-time, highly trusted Django developers, and its archives are not publicly readable.",
        Y,
    ),
    (
        "dj-security",
        "raft+rag@generate",
        "If you think you’ve found a security problem with Django, please don’t post a message on the forum, IRC, or one of the public mailing lists.",
        Y,
    ),
    (
        "dj-security",
        "rag+finetuned@generate",
        "You should not use the admin for security reasons.",
        N,
    ),
    (
        "dj-get-started",
        "finetuned",
        "To get started, you can simply visit the company's official website.",
        N,
    ),
    (
        "dj-get-started",
        "raft+rag@generate",
        "Django is 100% Python, so if you’ve got minimal comfort with Python you’ll probably get a lot more out of Django.",
        N,
    ),
    (
        "dj-license",
        "base",
        "It is licensed under the Apache 2 License 2.0, which means that Django is a derivative of the Django framework, and it is available for commercial use under the terms of the Apache License 2.0.",
        N,
    ),
    (
        "dj-license",
        "raft-random+rag@generate",
        "Django is distributed under a permissive open source license granting broad permissions to modify and redistribute Django.",
        Y,
    ),
    (
        "dj-license",
        "raft+rag@generate",
        "A copy of the Python license is included with Django for compliance with Python’s terms.",
        N,
    ),
    (
        "dj-context-var",
        "finetuned",
        "You can make a variable available to all templates by using the `#variable` tag in your template.",
        N,
    ),
    ("dj-context-var", "raft-random+rag@generate", "Use a RequestContext.", Y),
    (
        "dj-context-var",
        "raft-random+rag@generate",
        "Details on how to do this are here: Using RequestContext.",
        Y,
    ),
    (
        "dj-context-var",
        "raft+rag@generate",
        "In Django, a template context is a dictionary that contains a dictionary called a template context.",
        N,
    ),
    ("dj-m2m-filter", "finetuned", "The filter is missing the ManyToManyField.", N),
    (
        "dj-m2m-filter",
        "raft-random+rag@generate",
        "When you search for a post using the filter, you’ll see a list of all the posts that match your criteria. [1]",
        N,
    ),
    (
        "dj-stable-release",
        "finetuned",
        "The stable version is the most widely used and recommended version for most users.",
        N,
    ),
    (
        "dj-stable-release",
        "raft-random+rag@generate",
        "If you’re using code in production, you should be using a stable release.",
        Y,
    ),
    (
        "dj-stable-release",
        "raft-random+rag@generate",
        "The Django project publishes a full stable release every nine months, with bugfix updates in between.",
        Y,
    ),
    (
        "dj-stable-release",
        "raft+rag@generate",
        "Django recommends using the latest stable release of Python.",
        N,
    ),
    (
        "dj-ignored-patch",
        "base",
        "However, I'm unable to assist with your specific request regarding the patch.",
        N,
    ),
    (
        "dj-ignored-patch",
        "raft-random+rag@generate",
        "Django’s ticket system contains hundreds of open tickets, of various degrees of impact on end-user functionality, and Django’s developers have to review and prioritize.",
        Y,
    ),
    (
        "dj-ignored-patch",
        "raft-random+rag@generate",
        "If you’re not satisfied with the patch you’re submitting, we’ll just close the ticket.",
        N,
    ),
    (
        "dj-mvc",
        "finetuned",
        "The Django framework is a MVC (Model-View-Controller) framework, but the name Django is actually a bit misleading.",
        N,
    ),
    (
        "dj-mvc",
        "raft-random+rag@generate",
        "So, in our case, a “view” is the Python callback function for a particular URL, because that callback function describes how the data is presented.",
        N,
    ),
    (
        "dj-mvc",
        "raft-random+rag@generate",
        "The view describes which data is presented, but a view normally delegates to a template, which describes how the data is presented.",
        Y,
    ),
    ("dj-mvc", "rag@generate", "Well, the standard names are debatable.", Y),
    ("dj-legacy", "base", "No, you cannot use Django with a pre-existing database.", N),
    (
        "dj-legacy",
        "finetuned",
        "You can use Django with a pre-existing database by using the Django-SQLite3 database.",
        N,
    ),
    ("dj-legacy", "raft+rag@generate", "Yes. See Integrating with a legacy database.", Y),
    ("dj-legacy", "rag@generate", "The answer is no.", N),
    (
        "dj-why-exist",
        "finetuned",
        "This project exists to help people find and use the most recent updates from the Google Cloud Platform.",
        N,
    ),
    (
        "dj-why-exist",
        "raft-random+rag@generate",
        "In fall 2003, the World Online developers have consistently been perfectionists when it comes to following best practices of Web development.",
        N,
    ),
    (
        "dj-why-exist",
        "raft+rag@generate",
        "In the fast-paced newsroom, World Online often has only a matter of hours to take a complicated Web application from concept to public launch.",
        Y,
    ),
    (
        "dj-why-exist",
        "rag@generate",
        "It was created by the team of developers at the University of California, Berkeley, and it has since become a popular choice for web development.",
        N,
    ),
]


# Tenth batch (2026-12-08): the SQLite FAQ evaluation's questions (base and RAG answers).
MODEL_CLAIMS[10] = [
    (
        "sq-zero-primary-key",
        "base",
        "The primary key in SQLite is a single character that is used to uniquely identify each row.",
        N,
    ),
    (
        "sq-zero-primary-key",
        "rag@generate",
        "SQLite allows you to insert a string into a database column of type integer, but it does not allow you to use '0' and '0.0' as the primary key on two different rows of the same table.",
        N,
    ),
    (
        "sq-zero-primary-key",
        "rag@generate",
        "The reason is that the primary key of a PRIMARY KEY is not a single-quote character, but rather a single-quote character that is used to indicate that the column is a PRIMARY KEY.",
        N,
    ),
    (
        "sq-schema-error",
        "base",
        "An SQLITE_SCHEMA error is a SQL injection vulnerability that occurs when a user attempts to access a table defined in a SQLite database using a user-supplied input.",
        N,
    ),
    (
        "sq-schema-error",
        "base",
        "This can lead to a denial-of-service attack, where the user is able to access sensitive data.",
        N,
    ),
    (
        "sq-schema-error",
        "rag@generate",
        "The SQL_SNAPSHELL_ERROR_SNAPSHELL_DENIAC error is a SQL_SNAPSHELL_ERROR_SNAPSHELL_DENIAC error that occurs when a database is not able to execute a SELECT statement.",
        N,
    ),
    (
        "sq-alter-table",
        "base",
        "To add, delete, or rename columns in SQLite, you can use the `CREATE_FULL_TABLE` function.",
        N,
    ),
    (
        "sq-alter-table",
        "base",
        "This function allows you to create a full table with all columns.",
        N,
    ),
    ("sq-alter-table", "base", "You can also use `ALTER TABLE table_name` to modify a table.", Y),
    (
        "sq-alter-table",
        "rag@generate",
        "You can use the `ALTER TABLE` statement to add a new column to an existing table.",
        Y,
    ),
    (
        "sq-alter-table",
        "rag@generate",
        "You can use the `ALTER TABLE` statement to create a new table with a new column.",
        N,
    ),
    (
        "sq-insert-slow",
        "base",
        "This is a classic example of a performance bottleneck in a database system.",
        N,
    ),
    (
        "sq-insert-slow",
        "base",
        "The system is designed to handle a large number of INSERT operations per second, but it's actually quite slow.",
        N,
    ),
    (
        "sq-insert-slow",
        "rag@generate",
        "INSERT is really slow - I can only do few dozen INSERTs per second",
        N,
    ),
    ("sq-threadsafe", "rag@generate", "No.", N),
    ("sq-threadsafe", "rag@generate", "SQLite is not threadsafe.", N),
    (
        "sq-autoincrement",
        "base",
        "To create an auto-incrementing field in a Python function, you can use the `AUTOINCREMENT` function from the `functools` module.",
        N,
    ),
    (
        "sq-autoincrement",
        "rag@generate",
        "To create an AUTOINCREMENT field in SQLite, you need to use the `CREATE TABLE (name,seq)` syntax.",
        N,
    ),
    (
        "sq-autoincrement",
        "rag@generate",
        "This is a bit different from MySQL, as it does not use the `CREATE TABLE` statement.",
        N,
    ),
    (
        "sq-autoincrement",
        "rag@generate",
        "Instead, you use the `CREATE TABLE (name,seq)` syntax to create a new table with the specified name and a single integer primary key.",
        N,
    ),
    ("sq-size-limits", "base", "Yes, there are several limitations to SQLite databases.", Y),
    (
        "sq-size-limits",
        "base",
        "One of the main limitations is that it is a cross-platform database, which means that it can be used on any platform that supports SQL.",
        N,
    ),
    ("sq-size-limits", "base", "This includes Windows, Linux, macOS, and Android.", N),
    (
        "sq-size-limits",
        "rag@generate",
        "No, there are no known size limits to SQLite databases.",
        N,
    ),
    (
        "sq-omit-options",
        "base",
        "The compiler error occurs when you use the SQLITE_OMIT_MEMORY_OFFSET_BITS_128 option when building SQLite.",
        N,
    ),
    (
        "sq-omit-options",
        "base",
        "This option is used to optimize the memory usage of the database.",
        N,
    ),
    ("sq-omit-options", "base", "It is not available in the default SQLite implementation.", N),
    (
        "sq-omit-options",
        "rag@generate",
        "The SQLite amalgamation is not compatible with the C++ standard.",
        N,
    ),
    (
        "sq-corrupt",
        "base",
        "An SQLITE_CORRUPT error is a SQLI error that occurs when a user attempts to execute a SQL command that is malformed.",
        N,
    ),
    (
        "sq-corrupt",
        "base",
        "This can happen when a user attempts to execute a command that is not supported by the SQLite3 database.",
        N,
    ),
    (
        "sq-corrupt",
        "rag@generate",
        "The SQLITE_CORRUPT error is an error that occurs when a database is full, and the database is malformed.",
        N,
    ),
    (
        "sq-corrupt",
        "rag@generate",
        "This error is caused by a buffer overflow in the sqlite3 module.",
        N,
    ),
    (
        "sq-recover-deleted",
        "base",
        "To recover deleted data from your SQLite database, you can use the `sqlite3` module in Python.",
        N,
    ),
    (
        "sq-recover-deleted",
        "base",
        "This module provides a way to create, read, and delete tables in a database.",
        N,
    ),
    (
        "sq-recover-deleted",
        "rag@generate",
        'You can use the "recovery.html" command to recover the information from your backup.',
        N,
    ),
    (
        "sq-railroad",
        "base",
        "The syntax diagrams generated for SQLite are based on the SQLite3 module.",
        N,
    ),
    (
        "sq-railroad",
        "base",
        "They are a type of SQLite3-based database design tool that allows users to create, modify, and query SQLite databases.",
        N,
    ),
    (
        "sq-railroad",
        "rag@generate",
        'The syntax diagrams (a.k.a. "railroad" diagrams) for SQLite are generated by the SQLite3 module.',
        N,
    ),
    (
        "sq-eccn",
        "base",
        "The Export Control Classification Number (ECCN) for SQLite is 2020-01-01.",
        N,
    ),
    (
        "sq-eccn",
        "rag@generate",
        "The Export Control Classification Number (ECCN) for SQLite is 1234.",
        N,
    ),
    (
        "sq-string-in-integer",
        "base",
        "You're right, SQLite allows you to insert a string into a database column of type integer, which is a common feature of many database systems.",
        N,
    ),
    (
        "sq-where-double-quotes",
        "base",
        'The WHERE clause expression column1="column1" is not a valid column name in the table.',
        N,
    ),
    (
        "sq-where-double-quotes",
        "base",
        'You can use the `SELECT` statement to get the rows where the column is "column1" instead of the rows where the column is "column1".',
        N,
    ),
    (
        "sq-list-tables",
        "base",
        "To list all tables/indices contained in an SQLite database, you can use the `SELECT` statement with the `COUNT(*)` function.",
        N,
    ),
    ("sq-list-tables", "base", "This will return all columns of table1.", N),
    ("sq-list-tables", "rag@generate", "The maximum size of a VARCHAR in SQLite is 1024 bytes.", N),
    ("sq-vacuum", "base", "This is a classic example of a data breach.", N),
    (
        "sq-vacuum",
        "base",
        "The company has a reputation for being meticulous about data security, and they've been known to intentionally delete large amounts of data without proper clearance.",
        N,
    ),
    ("sq-vacuum", "rag@generate", "No.", Y),
    (
        "sq-vacuum",
        "rag@generate",
        "The VACUUM command rebuilds the database file, reclaims the space, and reduces the size of the database file.",
        Y,
    ),
    ("sq-vacuum", "rag@generate", "This is a normal process that is not a bug.", Y),
    (
        "sq-foreign-keys",
        "base",
        "In SQL, foreign keys are used to create composite relationships between tables.",
        N,
    ),
    ("sq-foreign-keys", "rag@generate", "No, SQLite does not support foreign keys.", N),
    ("sq-blob", "base", "BLOB is a type of file that is not supported by SQLite.", N),
    ("sq-blob", "rag@generate", "No, SQLite does not support a BLOB type.", N),
    ("sq-column-name", "base", "This is a bug in the SQL Server 2019.", N),
    (
        "sq-column-name",
        "base",
        "The SQL Server 2020 and later versions have a bug that prevents the column name from being returned.",
        N,
    ),
    ("sq-compiler-warnings", "base", "No, this is not a problem.", Y),
    (
        "sq-compiler-warnings",
        "rag@generate",
        "The SQLite_CORRUPT error is a result of a compilation error that occurs when a SQLite server is unable to compile a SQLite server.",
        N,
    ),
    (
        "sq-compiler-warnings",
        "rag@generate",
        "This error is caused by a compilation error that is not a compilation error.",
        N,
    ),
    ("sq-unicode-case", "base", 'The company\'s own term is "system."', N),
    (
        "sq-unicode-case",
        "rag@generate",
        "The SQLite source code does not support full Unicode case folding.",
        N,
    ),
    ("sq-varchar", "base", "The maximum size of a VARCHAR in SQLite is 100000.", N),
    ("sq-varchar", "rag@generate", "The maximum size of a VARCHAR in SQLite is 512 bytes.", N),
    (
        "sq-single-quote",
        "base",
        "To use a string literal that contains an embedded single-quote (') character, you need to escape the single quote by using the `'` escape character.",
        Y,
    ),
    (
        "sq-unique-null",
        "base",
        "The SQL standard does not require a UNIQUE constraint to enforce NULL values, but SQLite does.",
        N,
    ),
    (
        "sq-royalties",
        "base",
        "No, you cannot use SQLite in your commercial product without paying royalties.",
        N,
    ),
]

# Eleventh batch (2026-12-08): the bundled model's answers (base and RAG) to questions about the
# sample knowledge base (made by bench/make_model_answers.py). Every section they ask about is
# already a passage above.
MODEL_CLAIMS[11] = [
    ("loading", "base", "The maximum payload of the AR7 robot is 1000 pounds.", N),
    ("loading", "rag@generate", "The maximum payload of the AR7 robot is 450 kg.", Y),
    (
        "e214",
        "base",
        "E-214 is a type of error code that indicates a failure in a system's error handling mechanism.",
        N,
    ),
    (
        "e214",
        "base",
        "It is a non-zero value that is often used to indicate a failure in a system's error handling mechanism.",
        N,
    ),
    (
        "e214",
        "rag@generate",
        "The error code E-214 indicates a failure of the safety lidar communication system (SLCS) to transmit lidar data to the robot's lidar system.",
        N,
    ),
    (
        "e214",
        "rag@generate",
        "This is a critical safety feature of the robot's lidar system, which is designed to detect and respond to any potential hazards.",
        N,
    ),
    (
        "e214",
        "rag@generate",
        "The error code E-214 is a warning signal that indicates a malfunctioning or malfunctioning system.",
        N,
    ),
    (
        "unused",
        "base",
        "The restocking fee applies when returning an unused product, which is a product that has been sold and is no longer available to the customer.",
        N,
    ),
    # The question restated, with no fee: not an answer the passage backs.
    ("unused", "rag@generate", "The restocking fee applies when returning an unused product.", N),
    (
        "unused",
        "base",
        "The restocking fee for returning an unused product is 10% of the total purchase price.",
        N,
    ),
    (
        "unused",
        "rag@generate",
        "The restocking fee for returning an unused product is 15% of the purchase price.",
        Y,
    ),
    (
        "dock-maint",
        "base",
        "The company recommends that the CD-2 dock's contact pads be cleaned every 12 months.",
        N,
    ),
    # Every two weeks is for the contact pads, not the docks "themselves".
    (
        "dock-maint",
        "rag@generate",
        "The CD-2 docks themselves are designed to be cleaned every two weeks.",
        N,
    ),
    (
        "dock-maint",
        "rag@generate",
        "The contact pads are designed to be cleaned with isopropyl alcohol, one worn pad set replaced, and the dock moved 4 m away from the cutting station.",
        N,
    ),
    (
        "shared-zones",
        "base",
        "The speed limit for robots in shared zones is 150 meters per hour.",
        N,
    ),
    ("shared-zones", "rag@generate", "The speed limit for robots in shared zones is 2.0 m/s.", N),
    (
        "dock-spec",
        "base",
        "A CD-2 charging dock typically requires a CD-2 charging device, which is a specialized device designed to charge a CD-2 device.",
        N,
    ),
    (
        "dock-spec",
        "rag@generate",
        "A CD-2 charging dock needs a DC power supply to charge the batteries.",
        N,
    ),
    (
        "pm-schedule",
        "base",
        "The AR7's drive wheel treads should be inspected every 12 months, as the tire is designed to be inspected every 12 months.",
        N,
    ),
    (
        "pm-schedule",
        "rag@generate",
        "The policy does not require a warranty, but it does not cover wear parts (bumper strips, wheel treads), damage from overloading beyond 450 kg, use outside the operating conditions, or repairs by anyone other than a Level 2 certified technician.",
        N,
    ),
    # The version is in the passage's section heading, as in the hand-written 4.2.1 claims.
    (
        "fixes-421",
        "rag@generate",
        "The fix to the false E-618 localization warnings was RunnerOS 4.2.1.",
        Y,
    ),
    (
        "ticket-20931",
        "base",
        "The support ticket NW-T-20931 was resolved to a refund of $100.",
        N,
    ),
    (
        "ticket-20931",
        "rag@generate",
        "The Northwind Robotics Support Team responded to the ticket with a refund of $100.",
        N,
    ),
    (
        "dock-led",
        "base",
        "A pulsing blue LED on the CD-2 dock refers to a type of LED that is designed to produce a blue light, typically in the blue-violet spectrum, which is often used in consumer electronics and medical devices.",
        N,
    ),
    (
        "dock-led",
        "rag@generate",
        "A pulsing blue LED on the CD-2 dock means that the robot is charging.",
        Y,
    ),
    (
        "incidents",
        "base",
        "A robot collision or near miss can be reported to the police within 15 minutes of the incident.",
        N,
    ),
    ("incidents", "rag@generate", "The answer is: 24 hours.", Y),
    (
        "modes",
        "base",
        "The maximum jog speed when driving the AR7 with the operator pendant is 100 km/h.",
        N,
    ),
    (
        "modes",
        "rag@generate",
        "The maximum jog speed when driving the AR7 with the operator pendant is 2.0 m/s.",
        N,
    ),
    ("support", "base", "Premium supports support for 24 hours, 1 day, and 1 week.", N),
    ("support", "rag@generate", "The policy is not available for purchase.", N),
    (
        "e102",
        "base",
        "The operator should immediately investigate the cause of the error and take corrective action to prevent similar errors in the future.",
        N,
    ),
    # The row says to power-cycle first and contact support only if the error returns.
    (
        "e102",
        "rag@generate",
        "The operator should contact the manufacturer of the robot to report the error and request a repair.",
        N,
    ),
    (
        "e330",
        "base",
        "A 330 error is a type of error that occurs when a machine or a system is unable to perform its intended function due to a malfunction or malfunctioning.",
        N,
    ),
    (
        "e330",
        "rag@generate",
        "The error E-330 refers to a battery imbalance that occurs when a robot's battery is too high.",
        N,
    ),
    (
        "e330",
        "rag@generate",
        "This can happen when the robot is not properly charged, which can be caused by a malfunctioning battery pack, a faulty battery management system (BMS), or a malfunctioning battery pack itself.",
        N,
    ),
    (
        "spec-battery",
        "base",
        "The AR7 battery is designed to last 80% of the battery life, so to answer your question, it takes approximately 8 hours to charge the AR7 battery to 80% capacity.",
        N,
    ),
    ("spec-battery", "rag@generate", "The answer is: 2.88 hours", N),
    (
        "spec-performance",
        "base",
        "The maximum speed of the AR7 in shared zones is 100 km/h.",
        N,
    ),
    (
        "spec-performance",
        "rag@generate",
        "The maximum speed of the AR7 in shared zones is 2.0 m/s.",
        N,
    ),
    (
        "estop",
        "base",
        "To clear an emergency stop on the AR7, you can use the AR7's emergency stop feature.",
        N,
    ),
    (
        "estop",
        "base",
        "This feature allows you to set a specific emergency stop level, which is 100% of the AR7's maximum emergency stop capacity.",
        N,
    ),
    ("estop", "rag@generate", "Open the AR7's safety menu.", N),
    ("estop", "rag@generate", 'Turn the e-stop button to the "on" position.', N),
    ("estop", "rag@generate", "Press RESUME on the e-stop button.", N),
    # The answer's last line, without its full stop; the sentence itself is whole.
    (
        "estop",
        "rag@generate",
        "The robot will automatically stay stopped until RESUME is pressed",
        Y,
    ),
    ("warranty", "base", "The warranty on the AR7 battery is 10 years.", N),
    (
        "warranty",
        "rag@generate",
        "The warranty on the AR7 battery lasts for 2 years, 12 months, and 12 months.",
        N,
    ),
    (
        "firmware",
        "base",
        "The AR7 is a firmware update for the AR7, which is a high-end AR-15 model.",
        N,
    ),
    (
        "firmware",
        "rag@generate",
        "The firmware of the AR7 is the **RunnerOS 4.2.1** (release 12 August 2024) and is updated from FleetOS.",
        N,
    ),
    (
        "dock-anchoring",
        "base",
        "The charging dock is anchored to the floor using a specialized cable system.",
        N,
    ),
    (
        "dock-anchoring",
        "base",
        "The dock is designed to support the weight of the charging device, which is a high-end e-bike with a 20-inch wheel.",
        N,
    ),
    (
        "dock-anchoring",
        "rag@generate",
        "The charging dock is anchored to the floor using a combination of two spring-loaded copper contact pads.",
        N,
    ),
    (
        "dock-anchoring",
        "rag@generate",
        "The pads are designed to be self-adjusting, allowing the dock to adjust its position in the case of a malfunction.",
        N,
    ),
    # The passage gives the ring's colour while charging, not a light on a control unit.
    (
        "status-ring",
        "base",
        "The status light on the robot's control unit indicates that the robot is currently charging.",
        N,
    ),
    (
        "status-ring",
        "rag@generate",
        "The status light on the robot's control panel indicates that the robot is charging.",
        N,
    ),
    (
        "about",
        "base",
        "Northwind Robotics is headquartered in Northwind, a global AI and robotics company headquartered in Northwind, a US-based AI and robotics company.",
        N,
    ),
    (
        "about",
        "rag@generate",
        "Northwind Robotics is headquartered in Northwind-Tech, a company that specializes in the development of robots and robots that can assist in the manufacturing of robots.",
        N,
    ),
    (
        "spec-environment",
        "base",
        "The AR7 is rated for an operating temperature range of 200°C to 300°C.",
        N,
    ),
    (
        "spec-environment",
        "rag@generate",
        "The AR7 is rated for 0 to 40 °C, but it is rated for 50 °C to 60 °C.",
        N,
    ),
    ("e810", "base", "A 2023 error E-810 refers to a bug in the Python 3.10.3.", N),
    (
        "e810",
        "base",
        "This error occurs when a function is not implemented correctly, causing a runtime error.",
        N,
    ),
    (
        "e810",
        "rag@generate",
        "The error E-810 refers to a feature in the Payload that prevents the robot from docked until the total is at least 450 kg.",
        N,
    ),
    (
        "e810",
        "rag@generate",
        "This feature is designed to prevent robots from docking at the wrong location, which can be a safety issue.",
        N,
    ),
]


# Twelfth batch (2026-12-08): the bundled model's answers (base and RAG) to 33 questions of the
# Debian FAQ, its own headings (made by `python bench/make_model_answers.py --set debian`),
# labelled against the FAQ entry that asks each question (the db-* passages above).
MODEL_CLAIMS[12] = [
    (
        "db-what-is",
        "base",
        "Debian GNU/Linux is a Unix-based operating system developed by The Linux Foundation.",
        N,
    ),
    (
        "db-what-is",
        "base",
        "It is a free and open-source operating system that was released in 2003 as a Linux kernel.",
        N,
    ),
    (
        "db-what-is",
        "rag@generate",
        "Debian GNU/Linux is a Linux distribution that is based on the GNU General Purpose GNU/Linux kernel.",
        N,
    ),
    (
        "db-what-is",
        "rag@generate",
        "The Debian project is a Linux project that is based on the GNU General Purpose GNU/Linux kernel.",
        N,
    ),
    (
        "db-gnu",
        "base",
        "The Debian project and the Free Software Foundation (FSF) are two distinct projects with different origins, goals, and approaches.",
        N,
    ),
    (
        "db-gnu",
        "base",
        "The Free Software Foundation (FSF) is a non-profit organization dedicated to promoting the free software philosophy, with a focus on developing and maintaining open-source software.",
        N,
    ),
    (
        "db-gnu",
        "base",
        "Debian, on the other hand, is a Unix-based operating system developed by the Linux project.",
        N,
    ),
    (
        "db-gnu",
        "rag@generate",
        "The Debian project is a separate entity from the Free Software Foundation's GNU project.",
        Y,
    ),
    (
        "db-derivatives",
        "base",
        "The company's domain is indeed a Linux and Ubuntu-based operating system.",
        N,
    ),
    ("db-compat", "base", "Debian is a Unix-based operating system designed for Linux systems.", N),
    (
        "db-compat",
        "base",
        "While Debian is not a native Unix-based system, it is a Unix-based operating system that was designed to run on multiple platforms, including Linux, which is a Unix-based operating system.",
        N,
    ),
    (
        "db-non-debian",
        "base",
        "To install a non-Debian program, you need to use the official package manager for your chosen operating system.",
        N,
    ),
    (
        "db-donate",
        "base",
        "This is a free and open-source project, and you can contribute to it through your personal funds.",
        N,
    ),
    (
        "db-donate",
        "base",
        "You can contribute to the Debian project by donating to the Debian Foundation, which is a non-profit organization dedicated to the development and maintenance of the Debian operating system.",
        N,
    ),
    (
        "db-donate",
        "rag@generate",
        "To become a Debian member/Debian developer, you need to join the Debian GNU/Linux project.",
        N,
    ),
    (
        "db-donate",
        "rag@generate",
        "You can join the Debian GNU/Linux project by downloading the Debian GNU/Linux 2.0.10 package and installing it on your Debian system.",
        N,
    ),
    (
        "db-console-font",
        "base",
        "To load a console font on startup in Debian, you can use the `sudo` command.",
        N,
    ),
    (
        "db-console-font",
        "rag@generate",
        "You can install a custom kernel with a different paper size.",
        N,
    ),
    (
        "db-console-font",
        "rag@generate",
        "This is a feature of Debian that allows you to install a kernel with a different paper size.",
        N,
    ),
    (
        "db-sysv-init",
        "rag@generate",
        "The official Debian documentation is available at the official Debian website.",
        N,
    ),
    (
        "db-override-file",
        "base",
        "To override a file installed by a package, you need to create a new file with the `override` method that takes a package name as an argument.",
        N,
    ),
    ("db-how-many", "base", "There are 424.000.000.000.", N),
    ("db-how-many", "rag@generate", "The answer is: 7.", N),
    (
        "db-stable-dir",
        "base",
        "The stable directory contains a list of all the stable files that have been created in the current directory.",
        N,
    ),
    (
        "db-stable-dir",
        "rag@generate",
        "The stable directory contains packages that are DFSG-free and freely distributable themselves.",
        Y,
    ),
    (
        "db-archive-dirs",
        "base",
        "The Debian archives contain a variety of files, including a variety of directories.",
        Y,
    ),
    (
        "db-archive-dirs",
        "base",
        "These directories are used to organize and manage the contents of the Debian repository.",
        Y,
    ),
    (
        "db-archive-dirs",
        "rag@generate",
        "The Debian GNU/Linux distribution is a collection of packages that are available for use with Debian GNU/Linux.",
        N,
    ),
    (
        "db-pool",
        "base",
        "The pool directory is a list of all the available pools in a given pool directory.",
        N,
    ),
    (
        "db-pool",
        "rag@generate",
        "The Debian GNU/Linux FAQ contains answers to a wide range of questions, including those related to the Debian package management system.",
        N,
    ),
    ("db-latest", "base", "The latest version of Debian is 2023.2.2.2.", N),
    ("db-latest", "rag@generate", "The latest version of Debian is 2.1.", N),
    (
        "db-cdrom",
        "base",
        "To install Debian from CD-ROMs, you'll need to download the Debian package from the official Debian website.",
        N,
    ),
    (
        "db-cdrom",
        "rag@generate",
        "The official document giving installation instructions is the Debian GNU/Linux Installation Guide.",
        N,
    ),
    (
        "db-kernel-compile",
        "base",
        "No, you cannot install and compile a kernel without some Debian-specific tweaking.",
        N,
    ),
    (
        "db-kernel-compile",
        "rag@generate",
        "There's only one common catch: the Debian C libraries are built with the most recent stable releases of the kernel headers.",
        Y,
    ),
    (
        "db-kernel-compile",
        "rag@generate",
        "If you happen to need to compile a program with kernel headers newer than the ones from the stable branch, then you should upgrade the package containing the headers.",
        Y,
    ),
    ("db-old-kernel", "base", "Yes, you can safely de-install an old kernel package.", Y),
    (
        "db-old-kernel",
        "base",
        'The recommended method is to use the "sudo" command to remove the package from the system\'s default package manager.',
        N,
    ),
    (
        "db-old-kernel",
        "base",
        'This can be done by running the command "sudo apt-remove -rws1 -rws2 sudo" followed by the package name.',
        N,
    ),
    (
        "db-old-kernel",
        "rag@generate",
        "The linux-image-NNN.prerm script checks to see whether the kernel you are currently running is the same as the kernel you are trying to de-install.",
        Y,
    ),
    (
        "db-old-kernel",
        "rag@generate",
        "Therefore you can remove unwanted kernel image packages using this command:\n\ndpkg --purge linux-image-NNN",
        Y,
    ),
    (
        "db-deb-format",
        "base",
        "A Debian binary package is typically formatted using the `sudo` command, which allows you to install packages without having to install them yourself.",
        N,
    ),
    (
        "db-deb-format",
        "rag@generate",
        "The format of a Debian binary package is a file named `.deb` that contains a list of executable files, including a `.deb` file extension.",
        N,
    ),
    (
        "db-deb-format",
        "rag@generate",
        "The contents of the file are a list of executable files that are included in the package.",
        N,
    ),
    (
        "db-conffile",
        "base",
        "A Debian confile is a type of file that is used to create a Linux kernel image.",
        N,
    ),
    (
        "db-conffile",
        "rag@generate",
        "A Debian conffile is a list of configuration files that are used to manage the package management system.",
        N,
    ),
    (
        "db-virtual",
        "base",
        "A Virtual Package is a digital service that allows users to access and manage their online presence, including their social media profiles, email, and other digital platforms.",
        N,
    ),
    (
        "db-virtual",
        "rag@generate",
        "A Virtual Package is a generic name that applies to any one of a group of packages, all of which provide similar basic functionality.",
        Y,
    ),
    (
        "db-virtual",
        "rag@generate",
        "For example, both konqueror and firefox-esr are web browsers, and should therefore satisfy any dependency of a program that requires a web browser on a system, in order to work or to be useful.",
        Y,
    ),
    (
        "db-virtual",
        "rag@generate",
        "They are therefore said to provide a virtual package called www-browser.",
        Y,
    ),
    (
        "db-want-flags",
        "base",
        "The package status refers to the status of the product or service being delivered.",
        N,
    ),
    (
        "db-want-flags",
        "rag@generate",
        "It is a deabi-based package management system (DBDES) that provides a set of tools for managing packages.",
        N,
    ),
    (
        "db-build-binary",
        "base",
        "To build binary packages from a source package, you need to use the `pip` command.",
        N,
    ),
    (
        "db-running-update",
        "base",
        'Debian claims to be able to update a running program using a process called "deb" (Debian) and "deb-src" (Debian).',
        N,
    ),
    (
        "db-which-package",
        "base",
        "Run the command `pip list -u` to list all packages installed.",
        N,
    ),
    (
        "db-which-package",
        "rag@generate",
        "To find out what package produced a particular file, you can use the command `dpkg --search foo` to search for the package named `foo` in the `foo` package directory.",
        N,
    ),
    ("db-non-free", "base", "Yes, Debian can be packaged with non-free software.", Y),
    (
        "db-non-free",
        "base",
        "This is a common practice in the Debian project, and it's not a bug.",
        N,
    ),
    (
        "db-non-free",
        "base",
        "The package is called Debian-Pack, and it's available for all versions of Debian.",
        N,
    ),
    (
        "db-non-free",
        "rag@generate",
        "While all the main components of Debian are free software, we provide a non-free directory for programs that are not freely redistributed.",
        Y,
    ),
    (
        "db-non-free",
        "rag@generate",
        "CD manufacturers may be able to distribute the non-free software they get from other sources on the same CD.",
        Y,
    ),
    (
        "db-non-free",
        "rag@generate",
        "This is nothing new: free and commercial software are distributed on the same CD by many manufacturers now.",
        Y,
    ),
    (
        "db-software",
        "base",
        "Debian is a Linux distribution that was created by the Linux kernel creators, Linus Torvalds, in 1991.",
        N,
    ),
    (
        "db-software",
        "base",
        "Debian is available for various applications and development software, including web servers, mobile devices, and other applications.",
        N,
    ),
    ("db-build-essential", "base", "You can then install the required packages using pip.", N),
    ("db-java", "base", "Debian supports Java 1.0.0.", N),
    ("db-djb", "base", "EzMLM/DJBN/QMALM/QMALM is a product of the ezmlm/djbdns/qmail company.", N),
    ("db-voip", "base", "The company's own domain is VoIP software.", N),
    (
        "db-voip",
        "rag@generate",
        "The Debian archives contain a variety of software, including a variety of software.",
        Y,
    ),
    (
        "db-online",
        "base",
        "While there are many on-line resources available, one of the most popular and widely used is the Debian wiki.",
        N,
    ),
    (
        "db-report-bug",
        "base",
        "This command will fetch the latest version of the Debian package and download the binary.",
        N,
    ),
    ("db-keep-debs", "base", "No, you don't need to keep all those .deb files on your disk.", Y),
    ("db-keep-debs", "base", "You can delete them when you're done with them.", Y),
    (
        "db-keep-debs",
        "rag@generate",
        "Packages can be upgraded in place, even in running systems.",
        N,
    ),
    (
        "db-keep-debs",
        "rag@generate",
        "Debian has a start-stop-daemon program that can be used to upgrade packages.",
        N,
    ),
]


def pair_row(
    ids: tuple[str, ...], claim: str, supported: bool, kind: str, batch: int, heldout: set[str]
) -> dict:
    """The row of one pair: held out when any of its passages is."""
    return {
        "claim": claim,
        "passages": [PASSAGES[pid][1][0] for pid in ids],
        "contexts": [PASSAGES[pid][1][1] for pid in ids],
        "passage_ids": list(ids),
        "supported": supported,
        "kind": kind,
        "corpus": PASSAGES[ids[0]][0],
        "split": "heldout" if any(pid in heldout for pid in ids) else "train",
        "batch": batch,
    }


def main() -> None:
    order = list(PASSAGES)
    heldout = {pid for i, pid in enumerate(order) if i % 3 == 2}
    # Which batch of passages a pair belongs to (its latest passage's): the figures are also
    # given per batch, the third one having been scored before any change it could inform.
    firsts = [
        order.index(pid)
        for pid in (
            "dj-save-user",
            "e810",
            "e101",
            "e520",
            "about",
            "spec-performance",
            "spec-connectivity",
        )
    ]
    rows = []
    for ids, claim, supported, kind in CLAIMS:
        batch = 1 + sum(max(order.index(pid) for pid in ids) >= first for first in firsts)
        rows.append(pair_row(ids, claim, supported, kind, batch, heldout))
    for batch, claims in MODEL_CLAIMS.items():
        rows += [
            {**pair_row((pid,), claim, supported, "model-answer", batch, heldout), "strategy": by}
            for pid, by, claim, supported in claims
        ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "heldout")}
    print(f"{len(rows)} pairs ({counts}) -> {OUT}")


if __name__ == "__main__":
    main()
