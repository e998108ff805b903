"""aiopod without ``await``: a blocking facade over :class:`aiopod.Runtime` for scripts.

::

    import aiopod.sync

    with aiopod.sync.Runtime(root="/tmp/store") as rt:
        [image] = rt.load("app.tar")
        rt.tag(image.id, "app:1")
        print(rt.images())

:class:`Runtime` has the methods of the async runtime, with the same parameters, the same
return types and the same errors; each call blocks until the async call it stands for has
finished.  Async iterators become iterators (``rt.event_log.follow()``), and an event
subscription is a plain context manager and iterator::

    with rt.events.subscribe(types=["image"]) as events:
        for item in events:   # Event or Lagged, as with the async runtime
            ...

How it works: :meth:`Runtime.open` starts an event loop in a thread of its own (anyio's
blocking portal, :func:`anyio.from_thread.start_blocking_portal`), where the async runtime
lives; every call is run there and waited for.  So:

* **Threads.**  One runtime may be used from many threads at once: their calls run
  concurrently in the runtime's loop, and the async runtime's lock orders its changes
  as it does for tasks.
* **Not inside an event loop.**  A call made in a thread that runs an event loop (a
  coroutine, a Jupyter cell, a build's progress callback) would block that loop; it
  raises :class:`~aiopod.errors.BlockingCallInEventLoop` instead.  There, ``await`` the
  async :class:`aiopod.Runtime`, or make the call from a worker thread.
* **Callbacks** (a build's ``progress``, a pull's ``progress``) are called in the
  runtime's own thread: they must not block, and must not call the runtime back.
* **Interrupting.**  ``KeyboardInterrupt`` (or any exception) raised in a thread while it
  waits cancels the call it waits for, with the async runtime's guarantees (a change
  that has started committing is finished, nothing is left half done); :meth:`close`
  waits for that.  Leaving a ``with`` block closes the runtime and stops its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Self, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from aiopod import _runtime
from aiopod._display import PrettyPrinter
from aiopod.errors import BlockingCallInEventLoop, RuntimeStopped
from aiopod.events import bus, log, stream
from aiopod.events.model import Event
from aiopod.storage.layer_check import DEFAULT_MAX_LAYER_RATIO, DEFAULT_MAX_LAYER_SIZE

__all__ = ("EventLog", "EventStream", "Runtime", "Subscription")

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")
#: The async object a view stands for.
S = TypeVar("S")


def running_event_loop() -> str | None:
    """The event loop running in this thread (``"asyncio"``, ``"trio"``), or None."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio: Any = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    return None


def refuse_in_event_loop(call: str) -> None:
    """Raise :class:`BlockingCallInEventLoop` if this thread runs an event loop."""
    library = running_event_loop()
    if library is not None:
        raise BlockingCallInEventLoop(call, library)


class _Link:
    """A sync runtime's event loop thread: its blocking portal, shared by its views.

    Thread-safe.  After :meth:`stop` every call raises :class:`RuntimeStopped`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._portal: BlockingPortal | None = None
        self._state: Literal["new", "open", "closed"] = "new"

    def start(self, backend: str, backend_options: dict[str, Any] | None) -> bool:
        """Start the loop's thread; False when it had been started before."""
        with self._lock:
            if self._state == "closed":
                raise RuntimeStopped()
            if self._state == "open":
                return False
            stack = contextlib.ExitStack()
            self._portal = stack.enter_context(
                start_blocking_portal(backend, backend_options, name="aiopod-sync")
            )
            self._stack, self._state = stack, "open"
            return True

    def stop(self) -> None:
        """Stop the loop (after the calls in progress have ended) and its thread."""
        with self._lock:
            stack, self._stack, self._portal = self._stack, None, None
            self._state = "closed"
        if stack is not None:
            stack.close()

    def _current(self, call: str) -> BlockingPortal:
        refuse_in_event_loop(call)
        portal = self._portal
        if portal is None:
            raise RuntimeStopped(
                "runtime has already been stopped"
                if self._state == "closed"
                else "runtime is not open: use `with aiopod.sync.Runtime(...) as rt:` or open()"
            )
        return portal

    def wait(self, call: str, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``await func()`` in the loop and return its result.

        An exception raised in this thread while it waits (``KeyboardInterrupt``)
        cancels the call before it propagates.
        """
        portal = self._current(call)
        try:
            future: Future[T] = portal.start_task_soon(func)
        except RuntimeError:  # the portal stopped between the check and the call
            raise RuntimeStopped() from None
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def run(self, call: str, func: Callable[[], T]) -> T:
        """Run ``func()`` in the loop's thread (objects of the loop are not thread-safe)."""
        portal = self._current(call)
        try:
            return portal.call(func)
        except RuntimeError:
            if self._portal is None:
                raise RuntimeStopped() from None
            raise

    def iterate(self, call: str, iterator: AsyncIterator[T], *, owned: bool) -> Iterator[T]:
        """*iterator*'s items, each awaited in the loop; closing this closes an *owned*
        iterator too (an async generator made for this iteration)."""

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await iterator.__anext__()
            except StopAsyncIteration:
                return False, None

        async def close() -> None:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                await closer()

        try:
            while True:
                more, item = self.wait(call, step)
                if not more:
                    return
                yield item  # type: ignore[misc]  # T when more is True
        finally:
            if owned:
                with contextlib.suppress(RuntimeStopped, BlockingCallInEventLoop):
                    self.wait(call, close)


class _View(Generic[S]):
    """A blocking stand-in for the async object ``_target`` (of type *S*)."""

    _target: S
    _link: _Link


def _signature_without_self(method: Callable[..., Any]) -> inspect.Signature:
    signature = inspect.signature(method)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


class _Bound(Generic[S, P, T]):
    """A method of a view: the async object's method *method*, called through *call*."""

    def __init__(
        self,
        method: Callable[Concatenate[S, P], Any],
        call: Callable[[_View[S], Callable[[], Any]], T],
    ) -> None:
        self._method = method
        self._call = call
        self._signature = _signature_without_self(method)
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, view: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, view: _View[S], owner: type[Any]) -> Callable[P, T]: ...

    def __get__(self, view: _View[S] | None, owner: type[Any]) -> Self | Callable[P, T]:
        if view is None:
            return self
        method, call = self._method, self._call

        def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
            return call(view, lambda: method(view._target, *args, **kwargs))

        functools.update_wrapper(blocking, method)
        del blocking.__wrapped__  # type: ignore[attr-defined]  # its signature has no self
        blocking.__signature__ = self._signature  # type: ignore[attr-defined]
        return blocking


def _awaiting(method: Callable[Concatenate[S, P], Awaitable[T]]) -> _Bound[S, P, T]:
    """The coroutine method *method*, as a method that waits for its result."""
    name = method.__name__
    return _Bound(method, lambda view, run: view._link.wait(name, run))


def _iterating(method: Callable[Concatenate[S, P], AsyncIterator[T]]) -> _Bound[S, P, Iterator[T]]:
    """The async iterator method *method*, as a method that returns an iterator."""
    name = method.__name__
    return _Bound(method, lambda view, start: view._link.iterate(name, start(), owned=True))


def _direct(method: Callable[Concatenate[S, P], T]) -> _Bound[S, P, T]:
    """The plain method *method*, called in the caller's thread (it needs no loop)."""
    return _Bound(method, lambda view, call: call())


def _in_loop(
    method: Callable[Concatenate[S, P], R], wrap: Callable[[_Link, R], V]
) -> _Bound[S, P, V]:
    """The plain method *method*, run in the loop's thread, its result wrapped by *wrap*."""
    name = method.__name__
    return _Bound(method, lambda view, run: wrap(view._link, view._link.run(name, run)))


# -- events ---------------------------------------------------------------------------------


class Subscription(_View[stream.StreamSubscription]):
    """A subscription to the store's events (see :class:`aiopod.StreamSubscription`), as a
    context manager (closed on exit) and an iterator of ``Event | Lagged``.

    Iteration ends when the runtime is closed (after the buffered events) or when the
    subscription is closed; it may be iterated in one thread and closed from another.
    """

    def __init__(self, link: _Link, target: stream.StreamSubscription) -> None:
        self._link, self._target = link, target

    receive = _awaiting(stream.StreamSubscription.receive)
    receive_nowait = _in_loop(stream.StreamSubscription.receive_nowait, lambda _, item: item)
    close = _in_loop(stream.StreamSubscription.close, lambda _, result: result)

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed."""
        return self._target.closed

    @property
    def pending(self) -> int:
        """Events buffered and not yet received."""
        return self._target.pending

    def __iter__(self) -> Iterator[Event | bus.Lagged]:
        return self._link.iterate("Subscription.__iter__", self._target, owned=False)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._target.closed:
            with contextlib.suppress(RuntimeStopped):
                self.close()


class EventStream(_View[stream.EventStream]):
    """The store's events of every process (see :class:`aiopod.EventStream`):
    ``subscribe`` returns a blocking :class:`Subscription`, ``verify`` checks the log."""

    def __init__(self, link: _Link, target: stream.EventStream) -> None:
        self._link, self._target = link, target

    subscribe = _in_loop(stream.EventStream.subscribe, Subscription)
    verify = _awaiting(stream.EventStream.verify)

    @property
    def closed(self) -> bool:
        """Whether the bus was closed (the runtime was)."""
        return self._target.closed

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return self._target.subscriber_count


class EventLog(_View[log.EventLog]):
    """The store's event log (see :class:`aiopod.EventLog`); ``follow`` is an iterator."""

    def __init__(self, link: _Link, target: log.EventLog) -> None:
        self._link, self._target = link, target

    follow = _iterating(log.EventLog.follow)
    read = _direct(log.EventLog.read)  # blocking already: read in the caller's thread
    last_seq = _direct(log.EventLog.last_seq)

    @property
    def path(self) -> Path:
        """The log file."""
        return self._target.path


# -- the runtime ----------------------------------------------------------------------------


class Runtime(_View[_runtime.Runtime]):
    """:class:`aiopod.Runtime` for code that cannot ``await`` (see the module docstring).

    The parameters are the async runtime's, and *backend* (``"asyncio"`` or ``"trio"``)
    and *backend_options* choose the event loop its thread runs.  Use it as ``with
    aiopod.sync.Runtime(root=...) as rt:``, or call :meth:`open` and :meth:`close`.

    :raises ~aiopod.errors.BlockingCallInEventLoop: made in a thread that runs an event
        loop (use the async :class:`aiopod.Runtime` there).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        policy: _runtime.Policy = "libpod",
        lock_timeout: float = 120.0,
        concurrency: int = 8,
        max_layer_size: int = DEFAULT_MAX_LAYER_SIZE,
        max_layer_ratio: float | None = DEFAULT_MAX_LAYER_RATIO,
        allow_special_files: bool = False,
        caller: str | None = None,
        event_retention: log.Retention | None = None,
        create: bool = False,
        read_only: bool = False,
        additional_stores: Sequence[str | os.PathLike[str]] = (),
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        refuse_in_event_loop("Runtime")
        self._target = _runtime.Runtime(
            root,
            policy=policy,
            lock_timeout=lock_timeout,
            concurrency=concurrency,
            max_layer_size=max_layer_size,
            max_layer_ratio=max_layer_ratio,
            allow_special_files=allow_special_files,
            caller=caller,
            event_retention=event_retention,
            create=create,
            read_only=read_only,
            additional_stores=additional_stores,
        )
        self._link = _Link()
        self._backend = backend
        self._backend_options = backend_options
        self.events = EventStream(self._link, self._target.events)
        self.event_log = EventLog(self._link, self._target.event_log)

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Start the runtime's thread and open the store.  Idempotent.

        :raises ~aiopod.errors.RuntimeStopped: the runtime was closed.
        """
        refuse_in_event_loop("open")
        if not self._link.start(self._backend, self._backend_options):
            return
        try:
            self._link.wait("open", self._target.open)
        except BaseException:
            self._link.stop()
            raise

    def close(self) -> None:
        """Close the runtime (as :meth:`aiopod.Runtime.aclose`: waits for a change in
        progress, ends every subscription) and stop its thread.  Idempotent."""
        refuse_in_event_loop("close")
        try:
            self._link.wait("close", self._target.aclose)
        except RuntimeStopped:
            pass  # never opened, or closed before
        finally:
            self._link.stop()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __repr__(self) -> str:
        return repr(self._target).replace("<aiopod.Runtime", "<aiopod.sync.Runtime", 1)

    def _repr_pretty_(self, p: PrettyPrinter, cycle: bool) -> None:
        self._target._repr_pretty_(p, cycle)

    def _repr_html_(self) -> str:
        return self._target._repr_html_()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The store directory."""
        return self._target.root

    @property
    def read_only(self) -> bool:
        """Whether the store is read-only (asked for, or found not writable by open)."""
        return self._target.read_only

    @property
    def policy(self) -> _runtime.Policy:
        """The removal policy."""
        return self._target.policy

    @property
    def concurrency(self) -> int:
        """How many storage containers a removal deletes at once."""
        return self._target.concurrency

    # -- the async runtime's calls (tests/test_sync.py checks that none is missing) --------

    images = _awaiting(_runtime.Runtime.images)
    get_image = _awaiting(_runtime.Runtime.get_image)
    inspect_image = _awaiting(_runtime.Runtime.inspect_image)
    tag = _awaiting(_runtime.Runtime.tag)
    untag = _awaiting(_runtime.Runtime.untag)
    load = _awaiting(_runtime.Runtime.load)
    import_image = _awaiting(_runtime.Runtime.import_image)
    save = _awaiting(_runtime.Runtime.save)
    pull = _awaiting(_runtime.Runtime.pull)
    push = _awaiting(_runtime.Runtime.push)
    login = _awaiting(_runtime.Runtime.login)
    logout = _awaiting(_runtime.Runtime.logout)
    logged_in_user = _awaiting(_runtime.Runtime.logged_in_user)
    remove_images = _awaiting(_runtime.Runtime.remove_images)
    remove_image = _awaiting(_runtime.Runtime.remove_image)
    prune_images = _awaiting(_runtime.Runtime.prune_images)
    containers = _awaiting(_runtime.Runtime.containers)
    create_container = _awaiting(_runtime.Runtime.create_container)
    create_working_container = _awaiting(_runtime.Runtime.create_working_container)
    remove_containers = _awaiting(_runtime.Runtime.remove_containers)
    build = _awaiting(_runtime.Runtime.build)
    check = _awaiting(_runtime.Runtime.check)
    image_tree = _awaiting(_runtime.Runtime.image_tree)
    history = _awaiting(_runtime.Runtime.history)
    disk_usage = _awaiting(_runtime.Runtime.disk_usage)
    prune_system = _awaiting(_runtime.Runtime.prune_system)
    info = _awaiting(_runtime.Runtime.info)
