"""Scenario 13: XSS payloads in every user-controlled string and the security headers (the
templates' escape hatches, production cookies and HSTS are in
test_templates_and_production_headers.py).

The payloads go into interaction text and drug names, label classes (a project whose classes
are payloads), usernames, project names, rule names and patterns, notes, run errors and import
file names. Every HTML page of the URL conf (app, auth, admin, API docs, DRF's browsable API) is
fetched and parsed with html5lib: no payload may become an element, an attribute or a
javascript: URL, only text. The same pages load in headless Chromium with alert() hooked: no
payload runs and the Content-Security-Policy reports no violation.
"""

from __future__ import annotations

import json
import re

import html5lib
import pytest
from django.test import Client
from django.utils import timezone

from annotations.models import (
    Adjudication,
    ImportJob,
    Interaction,
    Label,
    LabelEvent,
    ReviewTask,
    Rule,
    Run,
)
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
    UserFactory,
)
from tests.reliability.conftest import admin_page_urls, app_page_urls, restore_migration_data

# OWASP XSS filter-evasion cheat sheet (a selection) plus our own contexts: attribute breakouts,
# unclosed attributes, javascript: URLs, </script> inside JSON, template syntax.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><svg onload=alert(2)>',
    "'><img src=x onerror=alert(3)>",
    "javascript:alert(4)",
    '<a href="javascript:alert(5)">click</a>',
    "<IMG SRC=JaVaScRiPt:alert(6)>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(7)>",
    '<<SCRIPT>alert("8");//\\<</SCRIPT>',
    '<SCRIPT/XSS SRC="http://127.0.0.1:9/x.js"></SCRIPT>',
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("9")>',
    '<iframe src="javascript:alert(10)">',
    "<svg><script>alert(11)</script></svg>",
    '</script><script>alert(12)</script>{"a":"</script>"}',
    '<img src="x" onerror="alert(13)',
    '" onmouseover="alert(14)" x="',
    "' autofocus onfocus='alert(15)' x='",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(16)>",
    "<details open ontoggle=alert(17)>",
    '<object data="javascript:alert(18)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(19)">',
    '<base href="http://127.0.0.1:9/">',
    "<style>@import'http://127.0.0.1:9/x.css';</style>",
    "{{ 7|add:7 }}{% csrf_token %}",
    "%3Cscript%3Ealert(20)%3C/script%3E",
    "<input autofocus onfocus=alert(21)>",
    '<form action="javascript:alert(22)"><button>x</button></form>',
]
# Short payloads for fields with a length limit or a format (label classes, usernames).
SHORT = [p for p in PAYLOADS if len(p) <= 60]

ON_ATTRIBUTE = re.compile(r"^on", re.IGNORECASE)
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "xlink:href", "poster"}
BAD_URL = re.compile(r"^\s*(javascript|vbscript|data:text/html)", re.IGNORECASE)
DECOY = "127.0.0.1:9"  # the host every loading payload points at


def _payload(n: int, pool=PAYLOADS) -> str:
    return pool[n % len(pool)]


@pytest.fixture
def hostile(db):
    """A project, its rows and its people named with payloads; returns the page objects."""
    classes = SHORT[:5]
    project = ProjectFactory(
        name=_payload(1), label_classes=classes, description=_payload(2), guideline=_payload(3)
    )
    admin = UserFactory(username=_payload(4, SHORT)[:150], role="Admin", first_name=_payload(5))
    reviewer = UserFactory(username=_payload(6, SHORT)[:150], role="Reviewer")
    curator = UserFactory(username=_payload(7, SHORT)[:150], role="Curator")
    project.members.add(admin, reviewer, curator)
    version = ModelVersionFactory(
        project=project,
        is_active=True,
        backbone=_payload(8),
        promotion_decision=_payload(9),
        metrics={"macro_f1": 0.5, _payload(10): _payload(11)},
    )
    job = ImportJob.objects.create(
        project=project,
        file_name=_payload(12) + ".csv",
        sha256="0" * 64,
        file_format="csv",
        errors=[_payload(13)],
        created_by=curator,
    )
    interactions = []
    for n, payload in enumerate(PAYLOADS):
        interaction = InteractionFactory(
            project=project,
            drug_a=payload[:500],
            drug_b=_payload(n + 1)[:500],
            description=f"{payload} may increase the activities of {_payload(n + 1)}.",
            blinded_text=f"DRUG_A {_payload(n + 2)} DRUG_B",
            source_file=_payload(n + 3),
            import_job=job,
            extra={_payload(n): _payload(n + 4)},
        )
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class=classes[n % len(classes)],
            probabilities=[1.0 / len(classes)] * len(classes),
        )
        interactions.append(interaction)
    for n, interaction in enumerate(interactions[: len(interactions) // 2]):
        Label.objects.create(
            interaction=interaction,
            label_class=classes[n % len(classes)],
            source=Label.Source.REVIEW,
            author=reviewer,
            note=_payload(n + 5),
        )
        LabelEvent.objects.create(
            interaction=interaction,
            actor=reviewer,
            action=LabelEvent.Action.CHANGE,
            source=Label.Source.REVIEW,
            old_class=classes[(n + 1) % len(classes)],
            new_class=classes[n % len(classes)],
            note=_payload(n + 6),
            version=1,
            predicted_class=classes[n % len(classes)],
        )
    # Team review: a blind answer and an open adjudication with hostile notes, one flagged label.
    ReviewTask.objects.create(
        interaction=interactions[0],
        kind=ReviewTask.Kind.SECOND_OPINION,
        answered_by=admin,
        answered_at=timezone.now(),
        answer_class=classes[1 % len(classes)],
        answer_status=Label.Status.LABELED,
        note=_payload(21),
        first_class=classes[0],
        first_status=Label.Status.LABELED,
        first_reviewer=reviewer,
        first_source=Label.Source.REVIEW,
    )
    adjudication = Adjudication.objects.create(interaction=interactions[0], reason=_payload(22))
    Label.objects.filter(interaction=interactions[1]).update(
        status=Label.Status.UNCLEAR, label_class=""
    )
    rule = Rule.objects.create(
        project=project,
        name=_payload(14),
        pattern=re.escape(_payload(15)),
        label_class=classes[0],
        created_by=curator,
    )
    run = Run.objects.create(
        project=project,
        kind=Run.Kind.TRAIN,
        state=Run.State.FAILED,
        error=_payload(16),
        stage=_payload(17)[:200],
        params={"backbone": _payload(18)},
        result={_payload(19): _payload(20)},
        model_version=version,
        created_by=admin,
    )
    return {
        "project": project,
        "interaction": interactions[0],
        "run": run,
        "rule": rule,
        "adjudication": adjudication,
        "version": version,
        "job": job,
        "users": {"admin": admin, "curator": curator, "reviewer": reviewer},
    }


def _all_pages(hostile) -> list[str]:
    objects = {k: hostile[k] for k in ("project", "interaction", "run", "rule", "adjudication")}
    by_model = {
        type(obj): obj
        for obj in (
            hostile["project"],
            hostile["interaction"],
            hostile["run"],
            hostile["rule"],
            hostile["version"],
            hostile["job"],
            hostile["users"]["reviewer"],
            Label.objects.filter(interaction__project=hostile["project"]).first(),
        )
    }
    api_lists = [
        f"/api/{name}/" for name in ("projects", "interactions", "labels", "rules", "runs")
    ]
    item_pages = [
        f"/interactions/{i.pk}/"
        for i in Interaction.objects.filter(project=hostile["project"]).order_by("pk")
    ]
    return sorted(
        {
            *app_page_urls(objects),
            *item_pages,
            *admin_page_urls(by_model),
            *api_lists,
            "/api/docs/",
            "/accounts/login/",
        }
    )


def _violations(html: str) -> list[str]:
    """Every place where a payload came out as markup instead of text. Each payload's attack
    needs one of: an event-handler attribute, a javascript:/vbscript:/data:text/html URL, a
    script or stylesheet that runs or loads its code (alert( or the 127.0.0.1:9 decoy host),
    or a meta refresh. Framework markup (Django admin's icons, DRF's and Swagger UI's pages)
    has none of these, so the check needs no per-page allowlist."""
    document = html5lib.parse(html, treebuilder="etree", namespaceHTMLElements=False)
    found = []
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.split("}")[-1].lower()
        attributes = {str(k).split("}")[-1].lower(): v or "" for k, v in element.attrib.items()}
        for name, value in attributes.items():
            if ON_ATTRIBUTE.match(name):
                found.append(f"<{tag} {name}=...> event handler")
            # A plain http(s) <a href> only navigates (DRF's browsable API urlizes URLs in
            # JSON strings); anything that loads the decoy or uses a script URL is an attack.
            loads_decoy = DECOY in value and not (tag == "a" and name == "href")
            if name in URL_ATTRIBUTES and (BAD_URL.match(value) or loads_decoy):
                found.append(f"<{tag} {name}={value!r}>")
        if tag == "meta" and (
            "javascript:" in attributes.get("content", "").lower()
            or DECOY in attributes.get("content", "")
        ):
            found.append("<meta> refresh to a payload URL")
        if tag in ("script", "style"):
            text = element.text or ""
            if tag == "script" and attributes.get("type") == "application/json":
                json.loads(text or "null")  # json_script data: must stay valid JSON
            elif "alert(" in text or DECOY in text:
                found.append(f"<{tag}> with payload code: {text[:80]!r}")
    return found


def _get(client: Client, url: str):
    return client.get(url, HTTP_ACCEPT="text/html", follow=True)


def test_no_payload_becomes_markup_on_any_html_page(hostile):
    pages = _all_pages(hostile)
    seen_payload_text = set()
    scanned, failures = 0, []
    for role, user in hostile["users"].items():
        client = Client()
        client.force_login(user)
        for url in pages:
            response = _get(client, url)
            if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                continue
            html = response.content.decode()
            scanned += 1
            failures += [f"{url} as {role}: {v}" for v in _violations(html)]
            text = "".join(
                html5lib.parse(html, treebuilder="etree", namespaceHTMLElements=False).itertext()
            )
            seen_payload_text |= {p for p in PAYLOADS if p in text}
    print(f"XSS scan: {len(PAYLOADS)} payloads, {len(pages)} urls, {scanned} pages parsed")
    assert not failures, "\n".join(sorted(set(failures)))
    assert scanned >= 3 * 20
    # The scan is not vacuous: the payloads really were on the pages, as text.
    assert len(seen_payload_text) >= len(PAYLOADS) * 3 // 4, set(PAYLOADS) - seen_payload_text


def test_every_html_page_sends_the_security_headers(hostile):
    client = Client()
    client.force_login(hostile["users"]["admin"])
    pages = [*_all_pages(hostile), "/no-such-page/"]
    checked = 0
    for url in pages:
        response = client.get(url, HTTP_ACCEPT="text/html")
        if "text/html" not in response.get("Content-Type", ""):
            continue
        checked += 1
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["Referrer-Policy"], url
        policy = response["Content-Security-Policy"]
        assert "default-src 'self'" in policy, url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, url
        assert "script-src 'self'" in policy and "object-src 'none'" in policy, url
    assert checked > 20


# --- Headless Chromium: nothing runs ------------------------------------------------------------
HOOK = """
window.__xss = [];
window.__csp = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...args) => { window.__xss.push(name + ":" + args.join(",")); };
}
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || ""));
});
"""


# Third-party pages (Swagger UI, DRF's browsable API) carry inline CSS; the CSP blocks it, which
# only changes their looks. Scripts are never allowed: any script-src violation fails.
def _allowed_violation(url: str, violation: str) -> bool:
    third_party = url.startswith("/api/")
    return third_party and violation.startswith(("style-src-elem", "style-src-attr"))


@pytest.fixture
def browser_db(transactional_db):
    """The live server thread needs committed rows; the flush of the previous transactional
    test emptied the migration's rows, so they are rebuilt first."""
    restore_migration_data()


@pytest.mark.browser
@pytest.mark.slow
def test_no_payload_executes_in_headless_chromium(browser_db, hostile, live_server, chromium):
    pages = [u for u in _all_pages(hostile) if not u.startswith("/admin/") or "/change/" in u]
    pages += ["/admin/", "/admin/annotations/interaction/", "/admin/auth/user/"]
    client = Client()
    client.force_login(hostile["users"]["admin"])
    context = chromium.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    context.add_init_script(HOOK)
    from playwright.sync_api import Error as PlaywrightError

    dialogs = []
    failures, errors, loaded = [], [], 0

    def new_page():
        fresh = context.new_page()
        fresh.set_default_navigation_timeout(60_000)  # a loaded 2-core CI box
        fresh.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        return fresh

    page = new_page()
    try:
        for url in sorted(set(pages)):
            response = None
            for _attempt in range(2):
                try:
                    response = page.goto(live_server.url + url, wait_until="load")
                    break
                except PlaywrightError as error:
                    # A failed navigation can leave the tab unable to navigate again (seen in
                    # CI: every later goto failed), so the tab is always replaced.
                    if not page.is_closed():
                        page.close()
                    page = new_page()
                    if "ERR_HTTP_RESPONSE_CODE_FAILURE" in str(error):
                        break  # POST-only routes answer GET with a bodiless 405
                    errors.append(f"{url}: {str(error).splitlines()[0]}")  # retried once
            if response is None or "text/html" not in (response.headers.get("content-type") or ""):
                continue  # a download (export) or a bodiless answer: nothing to render
            loaded += 1
            page.wait_for_timeout(50)  # let deferred scripts and autofocus handlers run
            ran = page.evaluate("window.__xss")
            violations = page.evaluate("window.__csp")
            violations = [v for v in violations if not _allowed_violation(url, v)]
            if ran or violations:
                failures.append(f"{url}: ran {ran}, CSP violations {violations}")
    finally:
        context.close()
    print(f"Chromium: {loaded} pages loaded with payloads; navigation errors: {errors}")
    assert dialogs == []
    assert not failures, "\n".join(failures)
    assert loaded > 40, f"only {loaded} pages rendered; navigation errors:\n" + "\n".join(errors)
