"""Exercises 4.1 and 4.2 (notebook 04): wrong answers fail with what went wrong."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosed

from wsteach.exercises import broadcast as ex
from wsteach.exercises._core import FAILED, NOT_ATTEMPTED, PASSED, Exercise


def only(exercise: Exercise, index: int) -> Exercise:
    """The same exercise with one scenario, to keep wrong answers quick to check."""
    return Exercise(
        exercise.number,
        exercise.title,
        scenarios=[exercise.scenarios[index]],
        hints=exercise.hints,
        solution=exercise.code,
        diagnose=exercise.diagnose,
    )


connected: set = set()


async def video_room(websocket):
    """The video's broadcast handler: everyone but the sender."""
    connected.add(websocket)
    try:
        async for message in websocket:
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    finally:
        connected.remove(websocket)


relayed: set = set()


async def who_relayed(websocket):
    """Answers /who, but relays it to the others too."""
    relayed.add(websocket)
    try:
        async for message in websocket:
            if message == "/who":
                await websocket.send(f"{len(relayed)} people connected")
            for conn in relayed:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    finally:
        relayed.remove(websocket)


async def test_everyone_rejects_the_video_room():
    """The video's room leaves the sender out, so 4.1 says the sender got nothing."""
    results = await only(ex.everyone, 0).results(video_room)
    first = results[0]
    assert first.status == FAILED
    assert first.detail == (
        "alice received: expected 'Someone said: hi', received nothing (waited 1 s)"
    )


async def test_who_rejects_relaying_the_command():
    """Relaying "/who" passes the count but fails the scenario about relaying."""
    results = await ex.who.results(who_relayed)
    assert [r.status for r in results] == [PASSED, FAILED, FAILED]
    assert results[1].detail == (
        "bob received: expected 'Someone said: hi', received 'Someone said: /who'"
    )


async def test_who_counts_one_person_in_the_singular():
    """A room that says "1 people connected" fails with the expected wording."""

    async def plural(websocket):
        async for _message in websocket:
            await websocket.send("1 people connected")

    results = await only(ex.who, 2).results(plural)
    assert results[0].detail == (
        "alice received: expected '1 person connected', received '1 people connected'"
    )


# The steps of the video's server: 4.1 to 4.6


async def test_connected_set_is_judged_by_name():
    """4.1 reads `connected` from the notebook: missing is not attempted, {} is failed."""

    async def status(namespace):
        (result,) = await ex.connected_set.results(namespace)
        return result

    assert (await status({})).status == NOT_ATTEMPTED
    assert (await status({"connected": ...})).status == NOT_ATTEMPTED
    wrong = await status({"connected": {}})
    assert wrong.status == FAILED
    assert wrong.detail == (
        "{} is an empty dict, not a set: expected 'set()', received '{}'"
    )
    assert (await status({"connected": []})).detail == (
        "connected: the room is a set: expected 'a set', received 'list'"
    )
    assert (await status({"connected": set()})).status == PASSED


async def test_connected_set_check_prints_one_line(capsys):
    """check() prints the step's header and its one line."""
    await ex.connected_set.check({"connected": set()})
    assert capsys.readouterr().out == (
        "Step 4.1 · A set for the room\n"
        "  ✓ connected is a set: passed\n"
        "  all passed: well done!\n"
    )


connected: set = set()


async def join_without_add(websocket):
    """Step 4.2 without connected.add: the set stays empty."""
    async for _message in websocket:
        pass


async def test_join_says_to_add_each_connection():
    """A handler that never adds says how many connections the set holds."""
    results = await ex.join.results(join_without_add)
    assert results[0].status == FAILED
    assert results[0].detail.startswith(
        "connections in connected while alice, bob and carol are connected "
        "(add each one when its handler starts): expected 3, received 0"
    )


async def relay_to_all(websocket):
    """Step 4.3 without the `if conn != websocket`."""
    connected.add(websocket)
    async for message in websocket:
        for conn in connected:
            await conn.send("Someone said: " + message)


async def test_relay_names_the_sender_check():
    """Sending back to the sender names the `conn == websocket` test, not a missing async for."""
    results = await ex.relay.results(relay_to_all)
    assert [r.status for r in results] == [PASSED, FAILED]
    assert results[1].detail == (
        "alice, the sender of hi, received: expected 'Someone said: hello', "
        "received 'Someone said: hi'; likely cause: your loop sends to every "
        "connection in connected, the sender's too: skip the one where "
        "conn == websocket"
    )


async def relay_to_websocket(websocket):
    """Step 4.3 with websocket.send where conn.send belongs."""
    connected.add(websocket)
    async for message in websocket:
        for conn in connected:
            if conn != websocket:
                await websocket.send("Someone said: " + message)


async def test_relay_names_websocket_send_in_the_loop():
    """websocket.send inside the loop over the room is named, with conn.send as the fix."""
    (result,) = await only(ex.relay, 0).results(relay_to_websocket)
    assert result.detail == (
        "bob received: expected 'Someone said: Hello everyone', received nothing "
        "(waited 1 s); likely cause: inside the loop over the room, "
        "websocket.send(...) sends to the sender again, once per connection; "
        "send to the loop's variable: conn.send(...)"
    )


async def join_with_a_local_set(websocket):
    """Step 4.2 with the set created inside the handler."""
    connected = set()
    connected.add(websocket)
    async for message in websocket:
        print("Received message from client: " + message)


async def test_join_names_a_set_made_inside_the_handler():
    """A connected = set() inside the handler is named: a local set, one per client."""
    (result,) = await only(ex.join, 0).results(join_with_a_local_set)
    assert result.detail == (
        "connections in connected while alice, bob and carol are connected "
        "(add each one when its handler starts): expected 3, received 0; "
        "likely cause: connected = ... inside your handler makes a new, local "
        "set at each call, one per client, and the notebook's connected stays "
        "empty; create the set once, outside the handler (step 4.1)"
    )


async def remove_after_try(websocket):
    """Step 4.4 with the removal after try/except instead of in finally."""
    connected.add(websocket)
    try:
        async for message in websocket:
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    except ConnectionClosed:
        pass
    connected.remove(websocket)


async def remove_nowhere(websocket):
    """Step 4.4 with try/except and no removal at all."""
    connected.add(websocket)
    try:
        async for message in websocket:
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    except ConnectionClosed:
        pass


async def test_echo_with_the_removal_after_try_fails_when_a_bug_crashes_it():
    """A removal after try/except passes the leaves, fails the crash, and is named."""
    results = await ex.echo.results(remove_after_try)
    assert [r.status for r in results] == [PASSED, PASSED, PASSED, FAILED]
    assert results[3].detail == (
        "connections in connected after carol's handler crashed: expected 1, "
        "received 2; likely cause: your removal comes after try/except, so it "
        "runs only when the handler ends the ways your except expects; an error "
        "it doesn't catch (here a TypeError) skips it: move it into finally:"
    )
    assert results[3].cause == "removal not in finally"


async def test_echo_without_any_removal_says_finally():
    """No removal at all: the crash scenario says to remove in finally."""
    (result,) = await only(ex.echo, 3).results(remove_nowhere)
    assert result.detail.endswith(
        "likely cause: nothing removes a connection whose handler crashed: "
        "remove it in a finally: block, which runs however the handler ends"
    )


async def test_echo_without_finally_says_to_remove():
    """Step 4.4 with the relay of 4.3 only: the set keeps bob after he left."""
    connected.clear()

    async def relay(websocket):
        connected.add(websocket)
        async for message in websocket:
            for conn in connected:
                if conn != websocket:
                    await conn.send("Someone said: " + message)

    results = await ex.echo.results(relay)
    assert results[0].status == PASSED
    assert results[1].status == FAILED
    assert "connections in connected after bob left (remove it in finally)" in (
        results[1].detail
    )


async def test_handler_without_a_set_named_connected_is_told():
    """A step handler whose room has another name is told where connected goes."""
    namespace: dict = {"room": set()}
    exec(
        "async def elsewhere(websocket):\n"
        "    room.add(websocket)\n"
        "    async for _message in websocket:\n"
        "        pass\n",
        namespace,
    )
    results = await ex.join.results(namespace["elsewhere"])
    assert results[0].status == FAILED
    assert "next to your handler (step 4.1)" in results[0].detail


def test_predict_who_hears():
    """Only alice hears bob once carol left; likely wrong answers say why."""
    assert ex.predict_who_hears.outcome(["alice"]).status == PASSED
    assert ex.predict_who_hears.outcome("alice").status == PASSED
    wrong = ex.predict_who_hears.outcome(["alice", "carol"])
    assert wrong.status == FAILED
    assert "finally removed her connection" in wrong.detail
    assert ex.predict_who_hears.outcome(...).status == NOT_ATTEMPTED


async def test_script_solution_passes(tmp_path):
    """The solution of 4.5, run as a real process, passes every scenario."""
    path = tmp_path / "server_echo_broadcast.py"
    path.write_text(ex.script.code.split("\n", 1)[1])
    results = await ex.script.results(path)
    assert [r.status for r in results] == [PASSED] * 4


async def test_script_without_except_fails_the_vanish(tmp_path):
    """A script whose handler lets ConnectionClosed escape misses the video's line."""
    path = tmp_path / "server_echo_broadcast.py"
    code = ex.script.code.split("\n", 1)[1]
    code = code.replace(
        '    except ConnectionClosed:\n        print("A client just disconnected")\n',
        "",
    )
    path.write_text(code)
    results = await ex.script.results(path, timeout=1)
    assert [r.status for r in results] == [PASSED, PASSED, FAILED, PASSED]
    assert results[2].detail.startswith(
        "the script printed: expected 'A client just disconnected'"
    )


async def test_script_with_other_words_fails_the_relay(tmp_path):
    """A script that relays "Someone wrote: …" fails 4.5's relay scenario, saying what bob got."""
    path = tmp_path / "server_echo_broadcast.py"
    code = ex.script.code.split("\n", 1)[1]
    path.write_text(code.replace('"Someone said: "', '"Someone wrote: "'))
    results = await ex.script.results(path)
    assert [r.status for r in results] == [PASSED, FAILED, PASSED, PASSED]
    assert results[1].detail == (
        "bob received: expected 'Someone said: Hello everyone', "
        "received 'Someone wrote: Hello everyone'"
    )


async def test_script_with_a_bare_main_names_it(tmp_path):
    """4.5 with main() instead of asyncio.run(main()) names the coroutine that never ran."""
    path = tmp_path / "server_echo_broadcast.py"
    code = ex.script.code.split("\n", 1)[1]
    path.write_text(code.replace("asyncio.run(main())", "main()"))
    results = await ex.script.results(path, timeout=1)
    assert results[0].status == FAILED
    assert results[0].detail.endswith(
        "; likely cause: main() on its own only makes a coroutine, which never "
        "runs: write asyncio.run(main())"
    )
    assert results[0].cause == "main() without asyncio.run"
