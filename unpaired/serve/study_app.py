"""``unpaired study serve``: the blinded study in the browser. A rater opens their link (``/r/TOKEN``) and sees
one pair at a time: the input and two translations, A on the left and B on the right, with the question and
"A", "B" and "Not sure". Nothing sent to the browser names a run: pages, URLs and headers carry only the question
and random tokens (the pair's id and one token per image, a new one in every pair). The results page asks for
the key printed when the study was created.
"""

from __future__ import annotations

import base64
import contextlib
import io

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from unpaired.serve.study import CHOICES, Study, bar_chart, markdown_report, preferences
from unpaired.serve.uploads import BodyLimit
from unpaired.serve.web import SecurityHeaders, error_handlers, escape, page

TITLE = "Study"
FORM_BYTES = 4096
"""The study's forms are a few short fields; any bigger body is refused."""
CHOICE_WORDS = {"left": "A", "right": "B", "unsure": "Not sure"}


class StudyApp:
    """The web app of one study folder; ``app`` is the ASGI application."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.store = study.store()
        self.pairs = study.pair_index
        routes = [Route("/", self.home), Route("/r/{rater}", self.next_pair),
                  Route("/r/{rater}/vote", self.vote, methods=["POST"]), Route("/img/{token}", self.image),
                  Route("/results", self.results_form), Route("/results", self.results, methods=["POST"])]
        self.app = Starlette(routes=routes, exception_handlers=error_handlers(TITLE),
                             middleware=[Middleware(SecurityHeaders), Middleware(BodyLimit, max_bytes=FORM_BYTES)],
                             lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette):
        yield
        self.store.close()

    async def home(self, request: Request) -> HTMLResponse:
        return page(TITLE, "<p>This is a blinded study. Open the link you were given to take part.</p>")

    def _rater(self, token: str) -> str:
        if not self.store.is_rater(token):
            raise HTTPException(404, "This rater link is not part of the study; check the link you were given.")
        return token

    async def next_pair(self, request: Request) -> HTMLResponse:
        rater = self._rater(request.path_params["rater"])
        voted = await anyio.to_thread.run_sync(self.store.voted_pairs, rater)
        left = [pair for pair in self.study.pairs if pair["id"] not in voted]
        if not left:
            return page(TITLE, f"<p>You have judged all {len(self.study.pairs)} pairs. Thank you!</p>")
        pair = left[0]
        figures = "".join(
            f'<figure><img class="shown" alt="{words}" src="/img/{escape(pair[side]["token"])}">'
            f"<figcaption>{words}</figcaption></figure>"
            for side, words in (("input", "input"), ("left", "A"), ("right", "B")))
        buttons = "".join(f'<button type="submit" name="choice" value="{choice}">{words}</button>'
                          for choice, words in CHOICE_WORDS.items())
        body = (f"<p>Pair {len(voted) + 1} of {len(self.study.pairs)}</p>"
                f"<h2>{escape(self.study.question)}</h2><div class=\"row\">{figures}</div>"
                f'<form method="post" action="/r/{escape(rater)}/vote">'
                f'<input type="hidden" name="pair" value="{escape(pair["id"])}"><p>{buttons}</p></form>')
        return page(TITLE, body)

    async def vote(self, request: Request) -> Response:
        rater = self._rater(request.path_params["rater"])
        async with request.form(max_files=0, max_fields=4, max_part_size=FORM_BYTES) as form:
            pair, choice = str(form.get("pair", "")), str(form.get("choice", ""))
        if pair not in self.pairs:
            raise HTTPException(404, "This pair is not part of the study.")
        if choice not in CHOICES:
            raise HTTPException(400, f"A vote is {', '.join(CHOICE_WORDS.values())}.")
        if not await anyio.to_thread.run_sync(self.store.vote, rater, pair, choice):
            body = f'<p><a href="/r/{escape(rater)}">Go on to the next pair</a></p>'
            return page(TITLE, body, 409, error="You have already voted on this pair; your first vote stands.")
        # committed: the redirect is the acknowledgement
        return RedirectResponse(f"/r/{rater}", status_code=303)

    async def image(self, request: Request) -> Response:
        path = self.study.images.get(request.path_params["token"])
        if path is None:
            raise HTTPException(404, "No such image.")
        data = await anyio.to_thread.run_sync(path.read_bytes)
        return Response(data, media_type="image/png", headers={"cache-control": "private, max-age=3600"})

    async def results_form(self, request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
        body = ('<form method="post" action="/results"><label>Results key: <input type="password" name="key" '
                'autocomplete="off" required></label><button type="submit">Show results</button></form>')
        return page(f"{TITLE} results", body, status, error=error)

    async def results(self, request: Request) -> HTMLResponse:
        async with request.form(max_files=0, max_fields=2, max_part_size=FORM_BYTES) as form:
            key = str(form.get("key", ""))
        if not self.study.key_matches(key):
            return await self.results_form(request, "Wrong key: the results are shown only with the key printed "
                                                    "when the study was created.", 403)
        rows = preferences(self.study, await anyio.to_thread.run_sync(self.store.votes))
        table = "".join(
            f"<tr><td>{escape(r.first)}</td><td>{escape(r.second)}</td><td>{r.first_wins}</td><td>{r.second_wins}"
            f"</td><td>{r.unsure}</td><td>{r.votes}</td></tr>" for r in rows)
        buffer = io.BytesIO()
        bar_chart(rows, self.study.question).save(buffer, format="PNG")
        chart = base64.b64encode(buffer.getvalue()).decode()
        report = markdown_report(self.study, rows)
        body = ("<table><tr><th>A</th><th>B</th><th>A preferred</th><th>B preferred</th><th>not sure</th>"
                f"<th>votes</th></tr>{table}</table>"
                f'<p><img alt="preference chart" src="data:image/png;base64,{chart}"></p>'
                f"<pre>{escape(report)}</pre>")
        return page(f"{TITLE} results", body)
