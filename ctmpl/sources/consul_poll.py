"""One long-poll loop on a catalog-wide Consul endpoint: index, retry, backoff and logging.

A ``Poll`` asks ``path`` again and again, each time with the index of the last answer, and
hands every answer to its owner. The rules, written once:

- an index that goes backwards (an agent that restarted starts its indexes again) is
  followed by a read without an index, which answers at once;
- a failed request retries that request only, with exponential backoff (``consul.retry``),
  and without its index, because the failure may be the agent restarting; nothing else is
  asked again;
- the first failure is logged at WARNING with the endpoint and the error, later attempts at
  DEBUG, the recovery at INFO; an unexpected exception (a bug) is logged with its traceback
  and retried the same way, so the loop never dies unnoticed;
- an answer that comes back at once with an unchanged index is not asked again for 100 ms;
- with ``hand_over`` (a poll whose answers carry the data itself, so that the queries it
  wakes send no request), after an answer with a new index the tasks it woke (those
  queries, and the runner they wake) run first, and the next request waits for the pass
  they set off, up to 50 ms (``ctmpl.tasks.give_way``): the render and the file write do
  not wait for the HTTP client to send it (about 0.5 ms of CPU at 1,000 services), nor
  share the machine with the agent answering it. It is asked with the new index, so a
  change made meanwhile is answered at once. Without it, the poll asks again at once: the
  reads its answer sets off queue for the same few connections, and a long-poll queued
  behind a hundred of them was measured to stall the feed for seconds on a loaded machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ctmpl import gcpolicy, tasks
from ctmpl.config.model import Retry
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import Answer
from ctmpl.watch import FailureLog, backoff_delay, next_index

log = logging.getLogger(__name__)


Params = tuple[tuple[str, str], ...]
Request = Callable[[str, str, Params, int], Awaitable[Answer]]
_MIN_GAP = 0.1
_HAND_OVER = 3  # event-loop turns: the woken queries, then the runner they wake
_GIVE_WAY = 0.05  # seconds the next request waits at most for the pass an answer set off


class Poll:
    """Long-polls ``path`` until cancelled; ``on_answer`` gets every answer, ``on_error``
    every failure (returning True when it handled it: nothing is logged then)."""

    def __init__(
        self,
        request: Request,
        key: str,
        path: str,
        params: Params,
        *,
        retry: Retry,
        on_answer: Callable[[Answer], None],
        on_error: Callable[[SourceError], bool],
        hand_over: bool = False,
    ) -> None:
        self.key = key
        self._hand_over = hand_over  # see the module docstring
        self._request = request
        self._path = path
        self._params = params
        self._retry = retry
        self._on_answer = on_answer
        self._on_error = on_error
        self.index = 0
        self._failures = FailureLog(key)

    async def run(self) -> None:
        """Poll forever (cancel to stop)."""
        loop = asyncio.get_running_loop()
        while True:
            asked, started = self.index, loop.time()
            try:
                index = await self._ask(asked)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(exc)
                continue
            self._failures.succeeded()
            self.index = next_index(asked, index)
            if index == asked and loop.time() - started < _MIN_GAP / 10:
                await asyncio.sleep(_MIN_GAP)
            elif index != asked and self._hand_over:
                for _ in range(_HAND_OVER):
                    await asyncio.sleep(0)
                await tasks.give_way(_GIVE_WAY)

    async def _ask(self, asked: int) -> int:
        """One request, handed to ``on_answer``; its index.

        The answer is decoded, handled and dropped with the garbage collector paused: a
        catalog-wide body is hundreds of thousands of objects, freed as soon as the owner
        kept what changed, and collections meanwhile would scan them all, several times
        per answer (``ctmpl.gcpolicy``). The ``Answer`` is not kept during the next
        long-poll either (its owner may keep the bytes: the UI catalog compares the next
        answer with them).
        """
        answer = await self._request(self.key, self._path, self._params, asked)
        with gcpolicy.paused():
            try:
                self._on_answer(answer)
            finally:
                answer.release()
        return answer.index

    async def _failed(self, exc: Exception) -> None:
        self.index = 0
        if isinstance(exc, SourceError):
            error = exc
        else:
            log.error("%s: unexpected failure", self.key, exc_info=exc)
            error = SourceError(f"{self.key}: {exc!r}")
        if self._on_error(error):
            self._failures.count = failures = 0  # handled (a fallback): nothing to report
        else:
            failures = self._failures.failed(str(error))
        await asyncio.sleep(backoff_delay(self._retry, failures))
