%% @doc Command loop through which `tpir demo' drives a TPIR node from a real Erlang VM.
%%
%% Run as
%%   erl -noshell -pa Dir -run tpir_demo_driver main -extra Executable Arg...
%% The node's command line goes after -extra because erl would take arguments such as
%% `-m' as its own flags. The driver starts tpir_port, registered as tpir_demo_node,
%% under a one_for_one supervisor as erlmcp would, and then reads commands from standard
%% input and writes results to standard output, one per line. Payloads travel as
%% MessagePack (the codec of tpir_port) in hexadecimal, so every line is plain ASCII.
%%
%% Commands:
%%   CALL Ref TimeoutMs Hex   tpir_port:call/4, where Hex encodes #{op => Op, args => Args}
%%   OSPID Ref                the OS process id of the node
%%   SUBSCRIBE Ref            forward every node event to standard output
%%   QUIT                     stop the supervisor (the node gets end of input), then halt
%% End of input does what QUIT does, so the VM never outlives the program that drives it.
%%
%% Output lines:
%%   READY Release            the supervisor has started tpir_port, which started the
%%                            node; Release is the OTP release, such as 25
%%   FAILED Reason            the supervisor could not start; the VM halts with status 1
%%   REPLY Ref ok Hex         the call returned {ok, Result}; Hex encodes Result
%%   REPLY Ref error Hex      the call returned {error, Error}; Hex encodes a map with
%%                            <<"code">> and <<"message">>: the node's own error map, or
%%                            one built from a tpir_port error such as port_exited
%%   EVENT Hex                a node event map
%%   INVALID Line             a command line that could not be parsed
%%   STOPPED                  the supervisor has stopped, right before the VM halts
%% Calls run in their own processes, so replies come back in any order.
-module(tpir_demo_driver).
-behaviour(supervisor).

-export([main/0, init/1]).

-define(SERVER, tpir_demo_node).
%% The supervisor takes this long at most to stop tpir_port; tpir_port's child spec
%% gives it 5000 ms to close the port.
-define(STOP_TIMEOUT_MS, 10000).

main() ->
    route_logs_to_stderr(),
    [Executable | Args] = init:get_plain_arguments(),
    Options = #{executable => Executable, args => Args, name => ?SERVER},
    case supervisor:start_link(?MODULE, tpir_port:child_spec(Options)) of
        {ok, Supervisor} ->
            emit(["READY ", erlang:system_info(otp_release)]),
            loop(Supervisor);
        {error, Reason} ->
            emit(io_lib:format("FAILED ~0p", [Reason])),
            halt(1)
    end.

init(ChildSpec) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 10}, [ChildSpec]}}.

%% tpir_port logs through logger, whose default handler writes to standard output,
%% which carries this driver's results. Its reports go to standard error instead.
route_logs_to_stderr() ->
    _ = logger:remove_handler(default),
    _ = logger:add_handler(default, logger_std_h, #{config => #{type => standard_error}}),
    ok.

loop(Supervisor) ->
    case io:get_line(standard_io, "") of
        eof ->
            quit(Supervisor);
        {error, _Reason} ->
            quit(Supervisor);
        Line ->
            Text = string:trim(Line),
            case string:lexemes(Text, " ") of
                ["QUIT"] ->
                    quit(Supervisor);
                ["CALL", Ref, Timeout, Hex] ->
                    spawn(fun() -> call(Ref, Timeout, Hex) end),
                    loop(Supervisor);
                ["OSPID", Ref] ->
                    spawn(fun() -> reply(Ref, tpir_port:os_pid(?SERVER)) end),
                    loop(Supervisor);
                ["SUBSCRIBE", Ref] ->
                    spawn(fun() -> forward_events(Ref) end),
                    loop(Supervisor);
                _ ->
                    emit(["INVALID ", Text]),
                    loop(Supervisor)
            end
    end.

call(Ref, TimeoutText, Hex) ->
    Result =
        try {list_to_integer(TimeoutText), tpir_port:decode(binary:decode_hex(list_to_binary(Hex)))} of
            {Timeout, {ok, #{<<"op">> := Op, <<"args">> := Args}}} when
                is_binary(Op), is_map(Args), Timeout >= 0
            ->
                tpir_port:call(?SERVER, Op, Args, Timeout);
            {_, Decoded} ->
                {error, {invalid_command, Decoded}}
        catch
            error:Reason -> {error, {invalid_command, Reason}}
        end,
    reply(Ref, Result).

forward_events(Ref) ->
    case tpir_port:subscribe(?SERVER) of
        ok ->
            reply(Ref, {ok, true}),
            forward_loop();
        Error ->
            reply(Ref, Error)
    end.

forward_loop() ->
    receive
        {tpir_event, Event} ->
            emit_payload("EVENT", Event),
            forward_loop()
    end.

reply(Ref, {ok, Result}) ->
    emit_payload(["REPLY ", Ref, " ok"], Result);
reply(Ref, {error, #{<<"code">> := _} = NodeError}) ->
    emit_payload(["REPLY ", Ref, " error"], NodeError);
reply(Ref, {error, Reason}) ->
    Code =
        case Reason of
            Atom when is_atom(Atom) -> atom_to_binary(Atom, utf8);
            _ -> <<"driver_error">>
        end,
    Message = iolist_to_binary(io_lib:format("tpir_port returned {error, ~0p}", [Reason])),
    emit_payload(["REPLY ", Ref, " error"], #{<<"code">> => Code, <<"message">> => Message}).

emit_payload(Prefix, Term) ->
    case tpir_port:encode(Term) of
        {ok, Binary} ->
            emit([Prefix, " ", binary:encode_hex(Binary)]);
        {error, Reason} ->
            Message = iolist_to_binary(io_lib:format("result cannot be encoded: ~0p", [Reason])),
            {ok, Binary} = tpir_port:encode(#{<<"code">> => <<"driver_error">>, <<"message">> => Message}),
            emit([Prefix, " ", binary:encode_hex(Binary)])
    end.

emit(Line) ->
    io:put_chars(standard_io, [Line, $\n]).

quit(Supervisor) ->
    Monitor = erlang:monitor(process, Supervisor),
    unlink(Supervisor),
    exit(Supervisor, shutdown),
    receive
        {'DOWN', Monitor, process, Supervisor, _} -> ok
    after ?STOP_TIMEOUT_MS ->
        exit(Supervisor, kill)
    end,
    emit("STOPPED"),
    halt(0).
