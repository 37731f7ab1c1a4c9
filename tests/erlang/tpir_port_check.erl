%% @doc Checks of tpir_port against the Python echo program, run by test_tpir_port.py.
%%
%% Run as `erl -noshell -pa Dir -run tpir_port_check main Case Python EchoScript'. Each
%% case prints lines that the Python test parses:
%%   CHECK Name ok            a check that passed
%%   CHECK Name fail Detail   a check that failed, with the values involved
%%   HEX Index Hex            the encoding of sample Index (case encode_samples)
%%   OSPID Pid                an echo program the case started, to verify it exited
%%   DONE                     the case ran to its end
%% The VM always halts at the end, also when a case crashes.
-module(tpir_port_check).
-behaviour(supervisor).

-export([main/1, init/1, samples/0]).

main([Case, Python, Echo]) ->
    Options = #{executable => Python, args => [Echo]},
    try
        run(list_to_atom(Case), Options),
        io:format("DONE~n")
    catch
        Class:Reason:Stack ->
            io:format("CHECK case_crashed fail ~0p~n", [{Class, Reason, Stack}])
    end,
    halt(0).

init(ChildSpec) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [ChildSpec]}}.

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

run(encode_samples, _Options) ->
    lists:foreach(
        fun({Index, Term}) ->
            {ok, Binary} = tpir_port:encode(Term),
            io:format("HEX ~b ~s~n", [Index, binary:encode_hex(Binary)])
        end,
        lists:zip(lists:seq(0, length(samples()) - 1), samples())
    );
run(codec, _Options) ->
    DecodeCases = [
        {float32, <<16#ca, 1.5:32/float>>, 1.5},
        {float32_infinity, <<16#ca, 16#7f800000:32>>, infinity},
        {float32_neg_infinity, <<16#ca, 16#ff800000:32>>, neg_infinity},
        {float32_nan, <<16#ca, 16#7fc00000:32>>, nan},
        {float64_nan, <<16#cb, 16#7ff8000000000000:64>>, nan},
        {uint8_small, <<16#cc, 5>>, 5},
        {uint16_small, <<16#cd, 5:16>>, 5},
        {uint32_small, <<16#ce, 5:32>>, 5},
        {uint64_small, <<16#cf, 5:64>>, 5},
        {int8_positive, <<16#d0, 5>>, 5},
        {int16_negative, <<16#d1, -5:16/signed>>, -5},
        {int32_negative, <<16#d2, -5:32/signed>>, -5},
        {int64_negative, <<16#d3, -5:64/signed>>, -5},
        {str8_short, <<16#d9, 2, "ab">>, <<"ab">>},
        {array16_short, <<16#dc, 2:16, 1, 2>>, [1, 2]},
        {map16_short, <<16#de, 1:16, 16#a1, "k", 16#c0>>, #{<<"k">> => nil}},
        {repeated_key_keeps_last, <<16#82, 16#a1, "k", 1, 16#a1, "k", 2>>, #{<<"k">> => 2}},
        {ext8, <<16#c7, 3, 16#fb, 1, 2, 3>>, {ext, -5, <<1, 2, 3>>}}
    ],
    [check(Name, tpir_port:decode(Binary), {ok, Expected}) || {Name, Binary, Expected} <- DecodeCases],
    ErrorCases = [
        {truncated_str, <<16#a5, "ab">>, {error, truncated}},
        {truncated_uint32, <<16#ce, 1, 2>>, {error, truncated}},
        {empty_input, <<>>, {error, truncated}},
        {reserved_byte, <<16#c1>>, {error, {invalid_byte, 16#c1}}},
        {trailing_bytes, <<16#c0, 16#c0>>, {error, {trailing_bytes, 1}}}
    ],
    [check(Name, tpir_port:decode(Binary), Expected) || {Name, Binary, Expected} <- ErrorCases],
    check(encode_invalid_utf8, element(1, tpir_port:encode(<<255>>)), error),
    check(encode_too_large, tpir_port:encode(1 bsl 64), {error, {integer_out_of_range, 1 bsl 64}}),
    check(encode_too_small, element(1, tpir_port:encode(-(1 bsl 63) - 1)), error),
    check(encode_tuple, tpir_port:encode({a, b}), {error, {unencodable, {a, b}}}),
    check(encode_improper_list, tpir_port:encode([1 | 2]), {error, {improper_list, [1 | 2]}}),
    check(encode_atom_as_str, tpir_port:encode(hello), {ok, <<16#a5, "hello">>});
run(roundtrip, Options) ->
    {ok, Server} = tpir_port:start_link(Options),
    report_os_pid(Server),
    lists:foreach(
        fun({Index, Term}) ->
            Expected = normalize(Term),
            Result = tpir_port:call(Server, call, #{integration => <<"echo">>, request => #{<<"v">> => Term}}, 30000),
            check({roundtrip, Index}, Result, {ok, #{<<"v">> => Expected}})
        end,
        lists:zip(lists:seq(0, length(roundtrip_samples()) - 1), roundtrip_samples())
    ),
    tpir_port:stop(Server);
run(errors, Options) ->
    {ok, Server} = tpir_port:start_link(Options),
    report_os_pid(Server),
    check(ping, tpir_port:call(Server, ping), {ok, <<"pong">>}),
    check(unknown_op, error_code(tpir_port:call(Server, launch, #{})), <<"unknown_op">>),
    check(invalid_argument, error_code(tpir_port:call(Server, call, #{integration => 5})), <<"invalid_argument">>),
    check(crash, error_code(tpir_port:call(Server, crash)), <<"internal_error">>),
    check(reserved_key, tpir_port:call(Server, ping, #{id => 1}), {error, {reserved_key, id}}),
    check(unencodable_arg, element(1, element(2, tpir_port:call(Server, ping, #{x => self()}))), badarg),
    check(non_map_args, element(1, element(2, tpir_port:call(Server, ping, [1]))), badarg),
    check(ping_after_errors, tpir_port:call(Server, ping), {ok, <<"pong">>}),
    tpir_port:stop(Server),
    check(call_after_stop, tpir_port:call(Server, ping), {error, not_running});
run(timeout, Options) ->
    {ok, Server} = tpir_port:start_link(Options),
    report_os_pid(Server),
    Slow = #{integration => <<"echo">>, request => #{<<"sleep">> => 0.5, <<"n">> => 1}},
    check(timed_out, tpir_port:call(Server, call, Slow, 100), {error, timeout}),
    check(pending_after_timeout, maps:get(pending_calls, tpir_port:info(Server)), 0),
    timer:sleep(700),
    Fast = #{integration => <<"echo">>, request => #{<<"n">> => 2}},
    check(next_call_gets_own_reply, tpir_port:call(Server, call, Fast), {ok, #{<<"n">> => 2}}),
    Stray = receive Message -> Message after 0 -> none end,
    check(no_stray_message, Stray, none),
    tpir_port:stop(Server);
run(subscribe, Options) ->
    {ok, Server} = tpir_port:start_link(Options),
    report_os_pid(Server),
    check(subscribe, tpir_port:subscribe(Server), ok),
    Emit = #{event => <<"tick">>, fields => #{n => 1}},
    check(emit_sent, tpir_port:call(Server, emit, Emit), {ok, #{<<"sent">> => true}}),
    Event = receive {tpir_event, E} -> E after 5000 -> no_event end,
    check(event_received, Event, #{<<"event">> => <<"tick">>, <<"n">> => 1}),
    check(subscriber_count, maps:get(subscribers, tpir_port:info(Server)), 1),
    check(unsubscribe, tpir_port:unsubscribe(Server), ok),
    check(emit_after_unsubscribe, tpir_port:call(Server, emit, Emit), {ok, #{<<"sent">> => true}}),
    Late = receive {tpir_event, L} -> L after 300 -> none end,
    check(no_event_after_unsubscribe, Late, none),
    tpir_port:stop(Server);
run(pipelined, Options) ->
    Workers = 200,
    CallsPerWorker = 50,
    {ok, Server} = tpir_port:start_link(Options),
    report_os_pid(Server),
    Parent = self(),
    Started = erlang:monotonic_time(millisecond),
    Pids = [spawn_link(fun() -> pipeline_worker(Parent, Server, Worker, CallsPerWorker) end)
            || Worker <- lists:seq(1, Workers)],
    Results = [receive {pipeline_done, Pid, Counts} -> Counts after 120000 -> {0, 0, [timeout]} end
               || Pid <- Pids],
    Elapsed = erlang:monotonic_time(millisecond) - Started,
    Answered = lists:sum([Ok || {Ok, _, _} <- Results]),
    Wrong = lists:sum([Bad || {_, Bad, _} <- Results]),
    Samples = lists:append([Examples || {_, _, Examples} <- Results]),
    io:format("INFO pipelined ~b calls in ~b ms~n", [Workers * CallsPerWorker, Elapsed]),
    check(all_answered, Answered, Workers * CallsPerWorker),
    check(none_wrong, {Wrong, lists:sublist(Samples, 3)}, {0, []}),
    check(nothing_pending, maps:get(pending_calls, tpir_port:info(Server)), 0),
    tpir_port:stop(Server);
run(kill_restart, Options) ->
    Name = tpir_port_check_node,
    ChildSpec = tpir_port:child_spec(Options#{name => Name}),
    check(child_spec_id, maps:get(id, ChildSpec), Name),
    {ok, Supervisor} = supervisor:start_link(?MODULE, ChildSpec),
    FirstServer = whereis(Name),
    {ok, FirstOsPid} = tpir_port:os_pid(Name),
    io:format("OSPID ~b~n", [FirstOsPid]),
    Callers = 50,
    Parent = self(),
    Slow = #{integration => <<"echo">>, request => #{<<"sleep">> => 5}},
    [spawn_link(fun() -> Parent ! {killed_call, tpir_port:call(Name, call, Slow, 30000)} end)
     || _ <- lists:seq(1, Callers)],
    check(calls_pending, wait_for_pending(Name, Callers, 10000), Callers),
    os:cmd("kill -KILL " ++ integer_to_list(FirstOsPid)),
    Outcomes = [receive {killed_call, Outcome} -> Outcome after 10000 -> no_reply end
                || _ <- lists:seq(1, Callers)],
    check(pending_get_port_exited, lists:usort(Outcomes), [{error, port_exited}]),
    SecondServer = wait_for_restart(Name, FirstServer, 10000),
    check(restarted, is_pid(SecondServer) andalso SecondServer =/= FirstServer, true),
    check(call_after_restart, tpir_port:call(Name, ping), {ok, <<"pong">>}),
    {ok, SecondOsPid} = tpir_port:os_pid(Name),
    io:format("OSPID ~b~n", [SecondOsPid]),
    check(new_os_process, SecondOsPid =/= FirstOsPid, true),
    unlink(Supervisor),
    exit(Supervisor, shutdown),
    check(supervisor_stopped, wait_until_dead(Supervisor, 10000), true).

%%--------------------------------------------------------------------
%% Samples
%%--------------------------------------------------------------------

%% The Python test lists the same values in the same order. Keep the two lists in step.
samples() ->
    [
        0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 18446744073709551615,
        -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649,
        -9223372036854775808,
        1.5, -2.25, 1.0e300, 5.0e-324,
        nil, true, false,
        <<>>, binary:copy(<<"a">>, 31), binary:copy(<<"a">>, 32), binary:copy(<<"a">>, 255),
        binary:copy(<<"a">>, 256), binary:copy(<<"a">>, 65535), binary:copy(<<"a">>, 65536),
        <<"héllo ✓"/utf8>>,
        {bin, <<>>}, {bin, binary:copy(<<255>>, 255)}, {bin, binary:copy(<<0>>, 256)},
        {bin, binary:copy(<<1>>, 65535)}, {bin, binary:copy(<<2>>, 65536)},
        [], lists:seq(1, 15), lists:seq(1, 16), lists:duplicate(65535, 0),
        lists:duplicate(65536, 1),
        #{}, #{<<"k">> => [1, {bin, <<9>>}]},
        {ext, 5, <<1>>}, {ext, 5, <<1, 2>>}, {ext, 5, <<1, 2, 3, 4>>},
        {ext, 5, binary:copy(<<7>>, 8)}, {ext, 5, binary:copy(<<7>>, 16)},
        {ext, 9, <<1, 2, 3>>}, {ext, 100, binary:copy(<<7>>, 256)},
        {ext, 1, binary:copy(<<7>>, 65536)}
    ].

roundtrip_samples() ->
    samples() ++
        [
            hello,
            #{atom_key => atom_value, 1 => <<"int key">>},
            maps:from_list([{I, I} || I <- lists:seq(1, 15)]),
            maps:from_list([{I, I} || I <- lists:seq(1, 16)]),
            maps:from_list([{I, I} || I <- lists:seq(1, 65536)]),
            #{<<"nested">> => [#{<<"a">> => [[], #{}]}, {bin, <<0, 1>>}, -7, 2.5, nil]}
        ].

%% What a term becomes after a trip through the codec: atoms other than nil, true and
%% false come back as str, so as binaries.
normalize(nil) -> nil;
normalize(true) -> true;
normalize(false) -> false;
normalize(Atom) when is_atom(Atom) -> atom_to_binary(Atom, utf8);
normalize(List) when is_list(List) -> [normalize(Item) || Item <- List];
normalize(Map) when is_map(Map) ->
    maps:from_list([{normalize(K), normalize(V)} || {K, V} <- maps:to_list(Map)]);
normalize(Term) -> Term.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

check(Name, Actual, Expected) when Actual =:= Expected ->
    io:format("CHECK ~0p ok~n", [Name]);
check(Name, Actual, Expected) ->
    io:format("CHECK ~0p fail ~0P expected ~0P~n", [Name, Actual, 30, Expected, 30]).

error_code({error, #{<<"code">> := Code}}) -> Code;
error_code(Other) -> {unexpected, Other}.

report_os_pid(Server) ->
    {ok, OsPid} = tpir_port:os_pid(Server),
    io:format("OSPID ~b~n", [OsPid]).

pipeline_worker(Parent, Server, Worker, Calls) ->
    Counts = lists:foldl(
        fun(N, {Ok, Bad, Examples}) ->
            Request = #{<<"worker">> => Worker, <<"n">> => N},
            case tpir_port:call(Server, call, #{integration => <<"echo">>, request => Request}, 60000) of
                {ok, Request} -> {Ok + 1, Bad, Examples};
                Other -> {Ok, Bad + 1, [Other | Examples]}
            end
        end,
        {0, 0, []},
        lists:seq(1, Calls)
    ),
    Parent ! {pipeline_done, self(), Counts}.

wait_for_pending(Name, Expected, TimeLeft) ->
    Pending =
        case tpir_port:info(Name) of
            #{pending_calls := Count} -> Count;
            _ -> -1
        end,
    if
        Pending >= Expected; TimeLeft =< 0 -> Pending;
        true ->
            timer:sleep(20),
            wait_for_pending(Name, Expected, TimeLeft - 20)
    end.

wait_for_restart(Name, OldPid, TimeLeft) ->
    case whereis(Name) of
        Pid when is_pid(Pid), Pid =/= OldPid -> Pid;
        _ when TimeLeft =< 0 -> timeout;
        _ ->
            timer:sleep(20),
            wait_for_restart(Name, OldPid, TimeLeft - 20)
    end.

wait_until_dead(Pid, TimeLeft) ->
    case is_process_alive(Pid) of
        false -> true;
        true when TimeLeft =< 0 -> false;
        true ->
            timer:sleep(20),
            wait_until_dead(Pid, TimeLeft - 20)
    end.
