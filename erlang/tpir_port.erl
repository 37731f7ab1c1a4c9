%% @doc Client of the TPIR node, which runs as an Erlang port beside erlmcp.
%%
%% A tpir_port server starts the node program with open_port/2 and `{packet, 4}',
%% exchanges MessagePack maps with it, matches replies to callers by an integer id that
%% it assigns, and forwards node events to subscribed processes as
%% `{tpir_event, Event}' messages.
%%
%% When the node exits, every pending call returns `{error, port_exited}' and the server
%% stops with reason `{port_exited, ExitStatus}', so its supervisor can restart it and
%% with it the node. The node program must exit when its stdin closes, because that is
%% how terminate/2 ends it.
%%
%% Options for start_link/1 and child_spec/1, as a map or a proplist:
%% <ul>
%% <li>`executable' (string or binary, required): path of the node program. It is not
%%   searched in PATH, so pass an absolute path or the result of os:find_executable/1.</li>
%% <li>`args' (list of strings or binaries, default []): program arguments.</li>
%% <li>`env' (list of `{Name, Value}' strings, default []): environment variables to set,
%%   or to unset with Value `false'.</li>
%% <li>`cd' (string, optional): working directory of the program.</li>
%% <li>`name' (atom, or `{local, Atom}', `{global, Term}', `{via, Module, Term}',
%%   optional): registered name of the server. An atom means `{local, Atom}'.</li>
%% <li>`id' (any term, default the atom name or `tpir_port'): child id in child_spec/1.</li>
%% </ul>
%%
%% The MessagePack codec (encode/1, decode/1) maps types as follows.
%% <ul>
%% <li>nil, true, false: the atoms `nil', `true', `false'. Other atoms encode as str.</li>
%% <li>int: integers from -2^63 to 2^64-1, encoded in the smallest int format.</li>
%% <li>float: floats encode as float 64. Float 32 and float 64 both decode. NaN and the
%%   infinities, which Erlang floats cannot hold, decode to the atoms `nan',
%%   `infinity' and `neg_infinity'.</li>
%% <li>str: binaries, which must be valid UTF-8. A decoded str is a binary.</li>
%% <li>bin: `{bin, Binary}' in both directions.</li>
%% <li>array: lists. Erlang strings (lists of characters) therefore encode as arrays of
%%   integers, so pass text as binaries.</li>
%% <li>map: maps with keys and values of any of these types.</li>
%% <li>ext: `{ext, Type, Binary}' in both directions, with Type from -128 to 127. Python's
%%   msgpack (tested with 1.2.4) rejects types below 0 other than -1.</li>
%% </ul>
-module(tpir_port).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/1, child_spec/1, stop/1]).
-export([call/2, call/3, call/4, subscribe/1, unsubscribe/1, os_pid/1, info/1]).
-export([encode/1, decode/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([option/0, options/0, call_error/0]).

-define(DEFAULT_TIMEOUT, 5000).
-define(MAX_ID, 16#7fffffffffffffff).
-define(MAX_32, 16#ffffffff).

-type option() ::
    {executable, file:filename_all()}
    | {args, [string() | binary()]}
    | {env, [{string(), string() | false}]}
    | {cd, file:filename_all()}
    | {name, atom() | {local, atom()} | {global, term()} | {via, module(), term()}}
    | {id, term()}.
-type options() :: [option()] | #{atom() => term()}.
%% `port_exited': the node exited while the call was pending or starting.
%% `timeout': no reply within Timeout ms. A late reply is dropped.
%% `not_running': no server with that name or pid.
%% `{server_exited, Reason}': the server stopped for another reason during the call.
-type call_error() ::
    port_exited
    | timeout
    | not_running
    | {badarg, term()}
    | {reserved_key, id | op}
    | {server_exited, term()}
    | #{binary() => term()}.

-record(state, {
    port :: port() | undefined,
    os_pid :: non_neg_integer() | undefined,
    next_id = 1 :: pos_integer(),
    %% Id => {From, TimerRef | undefined}, or subscribe for the server's own request.
    pending = #{} :: #{pos_integer() => {gen_server:from(), reference() | undefined} | subscribe},
    %% Subscriber pid => monitor reference.
    subscribers = #{} :: #{pid() => reference()},
    subscribed = false :: boolean()
}).

%%====================================================================
%% API
%%====================================================================

%% @doc Start the server and the node program, linked to the caller.
-spec start_link(options()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Options) ->
    case normalize_options(Options) of
        {ok, Config} ->
            case maps:find(name, Config) of
                {ok, Name} -> gen_server:start_link(server_name(Name), ?MODULE, Config, []);
                error -> gen_server:start_link(?MODULE, Config, [])
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc Return a supervisor child spec with restart type `permanent', so the supervisor
%% restarts the server (and with it the node) whenever it stops, for any reason.
-spec child_spec(options()) -> supervisor:child_spec().
child_spec(Options) ->
    Map = options_to_map(Options),
    Default =
        case maps:get(name, Map, undefined) of
            Name when is_atom(Name), Name =/= undefined -> Name;
            {local, Name} -> Name;
            _ -> tpir_port
        end,
    #{
        id => maps:get(id, Map, Default),
        start => {?MODULE, start_link, [Options]},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [?MODULE]
    }.

%% @doc Stop the server, failing pending calls with `{error, port_exited}'. The node
%% program gets end of input on stdin and is expected to exit. Under a supervisor, use
%% supervisor:terminate_child/2 instead, because the permanent child would be restarted.
-spec stop(gen_server:server_ref()) -> ok.
stop(Server) ->
    gen_server:stop(Server).

%% @equiv call(Server, Op, #{}, 5000)
-spec call(gen_server:server_ref(), atom() | binary()) ->
    {ok, term()} | {error, call_error()}.
call(Server, Op) ->
    call(Server, Op, #{}, ?DEFAULT_TIMEOUT).

%% @equiv call(Server, Op, Args, 5000)
-spec call(gen_server:server_ref(), atom() | binary(), map()) ->
    {ok, term()} | {error, call_error()}.
call(Server, Op, Args) ->
    call(Server, Op, Args, ?DEFAULT_TIMEOUT).

%% @doc Send operation Op with the arguments in Args and wait up to Timeout ms.
%%
%% Returns `{ok, Result}' with the decoded result, or `{error, Error}'. A node error
%% is its error map, `#{<<"code">> => Code, <<"message">> => Message,
%% <<"details">> => Details}'. Args must not contain the keys `id' or `op', which
%% the server sets, and is encoded in the calling process.
-spec call(gen_server:server_ref(), atom() | binary(), map(), timeout()) ->
    {ok, term()} | {error, call_error()}.
call(Server, Op, Args, Timeout) when
    (is_atom(Op) orelse is_binary(Op)),
    is_map(Args),
    (Timeout =:= infinity orelse (is_integer(Timeout) andalso Timeout >= 0))
->
    case encode_arguments(Op, Args) of
        {ok, OpBin, Body} ->
            Request = {call, OpBin, map_size(Args), Body, Timeout},
            try
                gen_server:call(Server, Request, infinity)
            catch
                exit:{Reason, {gen_server, call, _}} -> {error, exit_to_error(Reason)}
            end;
        {error, _} = Error ->
            Error
    end;
call(_Server, Op, Args, Timeout) ->
    {error, {badarg, {Op, Args, Timeout}}}.

%% @doc Send node events to the calling process as `{tpir_event, Event}' messages,
%% where Event is the decoded event map, for example
%% `#{<<"event">> => <<"breaker_opened">>, ...}'. The subscription ends when the
%% process exits, calls unsubscribe/1, or the server restarts.
-spec subscribe(gen_server:server_ref()) -> ok | {error, call_error()}.
subscribe(Server) ->
    safe_call(Server, {subscribe, self()}).

%% @doc Stop sending events to the calling process.
-spec unsubscribe(gen_server:server_ref()) -> ok | {error, call_error()}.
unsubscribe(Server) ->
    safe_call(Server, {unsubscribe, self()}).

%% @doc Return the operating system process id of the node program.
-spec os_pid(gen_server:server_ref()) -> {ok, non_neg_integer()} | {error, call_error()}.
os_pid(Server) ->
    safe_call(Server, os_pid).

%% @doc Return the node's OS process id, the number of pending calls (including the
%% server's own subscribe request) and the number of event subscribers.
-spec info(gen_server:server_ref()) ->
    #{os_pid := non_neg_integer() | undefined, pending_calls := non_neg_integer(),
      subscribers := non_neg_integer()}
    | {error, call_error()}.
info(Server) ->
    safe_call(Server, info).

%%====================================================================
%% gen_server callbacks
%%====================================================================

init(Config) ->
    %% Trapping exits turns a port failure into a message, so pending calls can be
    %% answered before the server stops.
    process_flag(trap_exit, true),
    Executable = maps:get(executable, Config),
    PortOptions =
        [
            {args, maps:get(args, Config, [])},
            {env, maps:get(env, Config, [])},
            {packet, 4},
            binary,
            exit_status,
            use_stdio
        ] ++
            [{cd, Dir} || {ok, Dir} <- [maps:find(cd, Config)]],
    try open_port({spawn_executable, Executable}, PortOptions) of
        Port ->
            OsPid =
                case erlang:port_info(Port, os_pid) of
                    {os_pid, Pid} -> Pid;
                    undefined -> undefined
                end,
            ?LOG_INFO("tpir_port: started node ~ts as OS process ~p", [Executable, OsPid]),
            {ok, #state{port = Port, os_pid = OsPid}}
    catch
        error:Reason ->
            ?LOG_ERROR("tpir_port: starting node ~ts failed: ~p", [Executable, Reason]),
            {stop, {open_port_failed, Reason}}
    end.

handle_call({call, OpBin, ArgCount, Body, Timeout}, From, State) ->
    Id = State#state.next_id,
    Frame = [
        map_header(ArgCount + 2),
        encode_str(<<"id">>),
        encode_int(Id),
        encode_str(<<"op">>),
        encode_str(OpBin)
        | Body
    ],
    case send_frame(State#state.port, Frame) of
        ok ->
            TimerRef =
                case Timeout of
                    infinity -> undefined;
                    _ -> erlang:send_after(Timeout, self(), {call_timeout, Id})
                end,
            Pending = maps:put(Id, {From, TimerRef}, State#state.pending),
            {noreply, State#state{next_id = next_id(Id), pending = Pending}};
        error ->
            {reply, {error, port_exited}, State}
    end;
handle_call({subscribe, Pid}, _From, State) ->
    Subscribers =
        case maps:is_key(Pid, State#state.subscribers) of
            true -> State#state.subscribers;
            false -> maps:put(Pid, erlang:monitor(process, Pid), State#state.subscribers)
        end,
    State1 = State#state{subscribers = Subscribers},
    case State1#state.subscribed of
        true -> {reply, ok, State1};
        false -> subscribe_node(State1)
    end;
handle_call({unsubscribe, Pid}, _From, State) ->
    {reply, ok, remove_subscriber(Pid, State)};
handle_call(os_pid, _From, State) ->
    {reply, {ok, State#state.os_pid}, State};
handle_call(info, _From, State) ->
    Info = #{
        os_pid => State#state.os_pid,
        pending_calls => map_size(State#state.pending),
        subscribers => map_size(State#state.subscribers)
    },
    {reply, Info, State};
handle_call(Request, _From, State) ->
    {reply, {error, {badarg, Request}}, State}.

handle_cast(Message, State) ->
    ?LOG_WARNING("tpir_port: ignored unexpected cast ~p", [Message]),
    {noreply, State}.

handle_info({Port, {data, Frame}}, #state{port = Port} = State) ->
    case decode(Frame) of
        {ok, Message} ->
            {noreply, handle_message(Message, State)};
        {error, Reason} ->
            ?LOG_WARNING("tpir_port: dropped a frame that is not valid MessagePack: ~p", [Reason]),
            {noreply, State}
    end;
handle_info({call_timeout, Id}, State) ->
    case maps:take(Id, State#state.pending) of
        {{From, _TimerRef}, Pending} ->
            gen_server:reply(From, {error, timeout}),
            {noreply, State#state{pending = Pending}};
        _ ->
            %% The reply arrived while the timer message was on its way.
            {noreply, State}
    end;
handle_info({Port, {exit_status, Status}}, #state{port = Port} = State) ->
    port_exited(Status, State);
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    port_exited(Reason, State);
handle_info({'DOWN', _Ref, process, Pid, _Reason}, State) ->
    {noreply, remove_subscriber(Pid, State)};
handle_info({'EXIT', _Pid, _Reason}, State) ->
    %% Exits of linked processes other than the port and the parent do not concern us,
    %% and gen_server handles the parent's exit itself.
    {noreply, State};
handle_info(Message, State) ->
    ?LOG_WARNING("tpir_port: ignored unexpected message ~p", [Message]),
    {noreply, State}.

terminate(Reason, State) ->
    fail_pending({error, port_exited}, State),
    case State#state.port of
        undefined ->
            ok;
        Port ->
            ?LOG_INFO("tpir_port: closing node OS process ~p (~p)", [State#state.os_pid, Reason]),
            catch port_close(Port),
            ok
    end.

%%====================================================================
%% Request and reply handling
%%====================================================================

handle_message(#{<<"id">> := Id, <<"ok">> := true} = Message, State) when is_integer(Id) ->
    deliver(Id, {ok, maps:get(<<"result">>, Message, nil)}, State);
handle_message(#{<<"id">> := Id, <<"ok">> := false} = Message, State) when is_integer(Id) ->
    deliver(Id, {error, maps:get(<<"error">>, Message, nil)}, State);
handle_message(#{<<"id">> := nil, <<"ok">> := false} = Message, State) ->
    %% The node could not read the id of a request. This client always sends valid
    %% requests, so this points at a bug on one side.
    ?LOG_WARNING("tpir_port: node rejected a request without an id: ~p", [
        maps:get(<<"error">>, Message, nil)
    ]),
    State;
handle_message(#{<<"event">> := _} = Event, State) when not is_map_key(<<"id">>, Event) ->
    Notification = {tpir_event, Event},
    _ = [Pid ! Notification || Pid <- maps:keys(State#state.subscribers)],
    State;
handle_message(Message, State) ->
    ?LOG_WARNING("tpir_port: dropped a message that is neither a reply nor an event: ~p", [
        Message
    ]),
    State.

deliver(Id, Result, State) ->
    case maps:take(Id, State#state.pending) of
        {subscribe, Pending} ->
            Subscribed =
                case Result of
                    {ok, _} ->
                        true;
                    {error, Error} ->
                        ?LOG_WARNING("tpir_port: node rejected subscribe: ~p", [Error]),
                        false
                end,
            State#state{pending = Pending, subscribed = Subscribed};
        {{From, TimerRef}, Pending} ->
            cancel_timer(TimerRef),
            gen_server:reply(From, Result),
            State#state{pending = Pending};
        error ->
            ?LOG_DEBUG("tpir_port: dropped the late reply to request ~p", [Id]),
            State
    end.

subscribe_node(State) ->
    Id = State#state.next_id,
    Frame = encode_term(#{<<"id">> => Id, <<"op">> => <<"subscribe">>}),
    case send_frame(State#state.port, Frame) of
        ok ->
            Pending = maps:put(Id, subscribe, State#state.pending),
            %% Marked subscribed now so that concurrent subscribers send one request.
            {reply, ok, State#state{next_id = next_id(Id), pending = Pending, subscribed = true}};
        error ->
            {reply, {error, port_exited}, State}
    end.

remove_subscriber(Pid, State) ->
    case maps:take(Pid, State#state.subscribers) of
        {Ref, Subscribers} ->
            erlang:demonitor(Ref, [flush]),
            State#state{subscribers = Subscribers};
        error ->
            State
    end.

port_exited(Status, State) ->
    ?LOG_ERROR("tpir_port: node OS process ~p exited with ~p, failing ~b pending calls", [
        State#state.os_pid, Status, map_size(State#state.pending)
    ]),
    fail_pending({error, port_exited}, State),
    {stop, {port_exited, Status}, State#state{port = undefined, pending = #{}}}.

fail_pending(Result, State) ->
    maps:foreach(
        fun
            (_Id, {From, TimerRef}) ->
                cancel_timer(TimerRef),
                gen_server:reply(From, Result);
            (_Id, subscribe) ->
                ok
        end,
        State#state.pending
    ).

send_frame(Port, Frame) ->
    try
        true = erlang:port_command(Port, Frame),
        ok
    catch
        error:badarg -> error
    end.

cancel_timer(undefined) -> ok;
cancel_timer(TimerRef) -> erlang:cancel_timer(TimerRef, [{async, true}, {info, false}]).

next_id(?MAX_ID) -> 1;
next_id(Id) -> Id + 1.

safe_call(Server, Request) ->
    try
        gen_server:call(Server, Request, ?DEFAULT_TIMEOUT)
    catch
        exit:{Reason, {gen_server, call, _}} -> {error, exit_to_error(Reason)}
    end.

exit_to_error({port_exited, _}) -> port_exited;
exit_to_error(noproc) -> not_running;
exit_to_error({nodedown, _}) -> not_running;
exit_to_error(timeout) -> timeout;
exit_to_error(normal) -> not_running;
exit_to_error(shutdown) -> not_running;
exit_to_error({shutdown, _}) -> not_running;
exit_to_error(Reason) -> {server_exited, Reason}.

encode_arguments(Op, Args) ->
    Reserved = [Key || Key <- [id, op, <<"id">>, <<"op">>], maps:is_key(Key, Args)],
    case Reserved of
        [Key | _] ->
            {error, {reserved_key, reserved_name(Key)}};
        [] ->
            OpBin = if is_atom(Op) -> atom_to_binary(Op, utf8); true -> Op end,
            try
                check_utf8(OpBin),
                Body = encode_pairs(Args),
                {ok, OpBin, Body}
            catch
                throw:{tpir_msgpack, Reason} -> {error, {badarg, Reason}}
            end
    end.

reserved_name(id) -> id;
reserved_name(<<"id">>) -> id;
reserved_name(op) -> op;
reserved_name(<<"op">>) -> op.

%%====================================================================
%% Options
%%====================================================================

options_to_map(Options) when is_map(Options) -> Options;
options_to_map(Options) when is_list(Options) -> proplists:to_map(Options).

normalize_options(Options) when is_map(Options); is_list(Options) ->
    Map = options_to_map(Options),
    Known = [executable, args, env, cd, name, id],
    case [Key || Key <- maps:keys(Map), not lists:member(Key, Known)] of
        [Unknown | _] ->
            {error, {invalid_option, Unknown, {known, Known}}};
        [] ->
            check_options(Map)
    end;
normalize_options(Options) ->
    {error, {invalid_option, options, Options}}.

check_options(Map) ->
    Checks = [
        {executable, fun is_filename/1, true},
        {args, fun is_argument_list/1, false},
        {env, fun is_env_list/1, false},
        {cd, fun is_filename/1, false},
        {name, fun is_server_name/1, false}
    ],
    check_options(Checks, Map).

check_options([], Map) ->
    {ok, Map};
check_options([{Key, IsValid, Required} | Rest], Map) ->
    case maps:find(Key, Map) of
        error when Required -> {error, {missing_option, Key}};
        error -> check_options(Rest, Map);
        {ok, Value} ->
            case IsValid(Value) of
                true -> check_options(Rest, Map);
                false -> {error, {invalid_option, Key, Value}}
            end
    end.

is_filename(Value) when is_binary(Value) -> true;
is_filename(Value) when is_list(Value) -> io_lib:printable_unicode_list(Value);
is_filename(_) -> false.

is_argument_list(Args) when is_list(Args) -> lists:all(fun is_filename/1, Args);
is_argument_list(_) -> false.

is_env_list(Env) when is_list(Env) ->
    lists:all(
        fun
            ({Name, false}) -> is_string(Name);
            ({Name, Value}) -> is_string(Name) andalso is_string(Value);
            (_) -> false
        end,
        Env
    );
is_env_list(_) ->
    false.

is_string(Value) -> is_list(Value) andalso io_lib:printable_unicode_list(Value).

is_server_name(Name) when is_atom(Name) -> true;
is_server_name({local, Name}) when is_atom(Name) -> true;
is_server_name({global, _}) -> true;
is_server_name({via, Module, _}) when is_atom(Module) -> true;
is_server_name(_) -> false.

server_name(Name) when is_atom(Name) -> {local, Name};
server_name(Name) -> Name.

%%====================================================================
%% MessagePack codec
%%====================================================================

%% @doc Encode a term as MessagePack, with the type mapping in the module doc.
-spec encode(term()) -> {ok, binary()} | {error, term()}.
encode(Term) ->
    try
        {ok, iolist_to_binary(encode_term(Term))}
    catch
        throw:{tpir_msgpack, Reason} -> {error, Reason}
    end.

%% @doc Decode one complete MessagePack value. Bytes after it are an error.
-spec decode(binary()) -> {ok, term()} | {error, term()}.
decode(Binary) when is_binary(Binary) ->
    try decode_term(Binary) of
        {Term, <<>>} -> {ok, Term};
        {_Term, Rest} -> {error, {trailing_bytes, byte_size(Rest)}}
    catch
        throw:{tpir_msgpack, Reason} -> {error, Reason}
    end.

encode_term(nil) ->
    <<16#c0>>;
encode_term(false) ->
    <<16#c2>>;
encode_term(true) ->
    <<16#c3>>;
encode_term(Atom) when is_atom(Atom) ->
    encode_str(atom_to_binary(Atom, utf8));
encode_term(Integer) when is_integer(Integer) ->
    encode_int(Integer);
encode_term(Float) when is_float(Float) ->
    <<16#cb, Float:64/float>>;
encode_term(Binary) when is_binary(Binary) ->
    check_utf8(Binary),
    encode_str(Binary);
encode_term({bin, Binary}) when is_binary(Binary) ->
    encode_bin(Binary);
encode_term({ext, Type, Data}) when
    is_integer(Type), Type >= -128, Type =< 127, is_binary(Data)
->
    encode_ext(Type, Data);
encode_term(List) when is_list(List) ->
    Length =
        try
            length(List)
        catch
            error:badarg -> throw({tpir_msgpack, {improper_list, List}})
        end,
    [array_header(Length) | [encode_term(Item) || Item <- List]];
encode_term(Map) when is_map(Map) ->
    [map_header(map_size(Map)) | encode_pairs(Map)];
encode_term(Term) ->
    throw({tpir_msgpack, {unencodable, Term}}).

encode_pairs(Map) ->
    maps:fold(fun(K, V, Acc) -> [encode_term(K), encode_term(V) | Acc] end, [], Map).

encode_int(I) when I >= 0, I =< 16#7f -> <<I>>;
encode_int(I) when I < 0, I >= -32 -> <<I:8/signed>>;
encode_int(I) when I >= 0, I =< 16#ff -> <<16#cc, I>>;
encode_int(I) when I >= 0, I =< 16#ffff -> <<16#cd, I:16>>;
encode_int(I) when I >= 0, I =< ?MAX_32 -> <<16#ce, I:32>>;
encode_int(I) when I >= 0, I =< 16#ffffffffffffffff -> <<16#cf, I:64>>;
encode_int(I) when I >= -16#80, I < 0 -> <<16#d0, I:8/signed>>;
encode_int(I) when I >= -16#8000, I < 0 -> <<16#d1, I:16/signed>>;
encode_int(I) when I >= -16#80000000, I < 0 -> <<16#d2, I:32/signed>>;
encode_int(I) when I >= -16#8000000000000000, I < 0 -> <<16#d3, I:64/signed>>;
encode_int(I) -> throw({tpir_msgpack, {integer_out_of_range, I}}).

encode_str(S) when byte_size(S) =< 31 -> [<<(16#a0 bor byte_size(S))>>, S];
encode_str(S) when byte_size(S) =< 16#ff -> [<<16#d9, (byte_size(S))>>, S];
encode_str(S) when byte_size(S) =< 16#ffff -> [<<16#da, (byte_size(S)):16>>, S];
encode_str(S) when byte_size(S) =< ?MAX_32 -> [<<16#db, (byte_size(S)):32>>, S];
encode_str(S) -> throw({tpir_msgpack, {too_long, str, byte_size(S)}}).

encode_bin(B) when byte_size(B) =< 16#ff -> [<<16#c4, (byte_size(B))>>, B];
encode_bin(B) when byte_size(B) =< 16#ffff -> [<<16#c5, (byte_size(B)):16>>, B];
encode_bin(B) when byte_size(B) =< ?MAX_32 -> [<<16#c6, (byte_size(B)):32>>, B];
encode_bin(B) -> throw({tpir_msgpack, {too_long, bin, byte_size(B)}}).

encode_ext(T, D) when byte_size(D) =:= 1 -> [<<16#d4, T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =:= 2 -> [<<16#d5, T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =:= 4 -> [<<16#d6, T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =:= 8 -> [<<16#d7, T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =:= 16 -> [<<16#d8, T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =< 16#ff -> [<<16#c7, (byte_size(D)), T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =< 16#ffff -> [<<16#c8, (byte_size(D)):16, T:8/signed>>, D];
encode_ext(T, D) when byte_size(D) =< ?MAX_32 -> [<<16#c9, (byte_size(D)):32, T:8/signed>>, D];
encode_ext(_T, D) -> throw({tpir_msgpack, {too_long, ext, byte_size(D)}}).

array_header(N) when N =< 15 -> <<(16#90 bor N)>>;
array_header(N) when N =< 16#ffff -> <<16#dc, N:16>>;
array_header(N) when N =< ?MAX_32 -> <<16#dd, N:32>>;
array_header(N) -> throw({tpir_msgpack, {too_long, array, N}}).

map_header(N) when N =< 15 -> <<(16#80 bor N)>>;
map_header(N) when N =< 16#ffff -> <<16#de, N:16>>;
map_header(N) when N =< ?MAX_32 -> <<16#df, N:32>>;
map_header(N) -> throw({tpir_msgpack, {too_long, map, N}}).

%% The receiver (Python's msgpack with raw=False) rejects a str that is not UTF-8, so
%% the encoder rejects it first and points the caller at {bin, Binary}.
check_utf8(Binary) ->
    case is_utf8(Binary) of
        true -> ok;
        false -> throw({tpir_msgpack, {invalid_utf8, Binary, use_bin_tuple_for_bytes}})
    end.

is_utf8(<<_/utf8, Rest/binary>>) -> is_utf8(Rest);
is_utf8(<<>>) -> true;
is_utf8(_) -> false.

%% Each clause matches a complete value. A clause whose sizes exceed the remaining
%% bytes does not match, so input that ends early falls through to the truncated clause.
decode_term(<<0:1, V:7, R/binary>>) -> {V, R};
decode_term(<<2#111:3, V:5, R/binary>>) -> {V - 32, R};
decode_term(<<2#1000:4, N:4, R/binary>>) -> decode_map(N, R, []);
decode_term(<<2#1001:4, N:4, R/binary>>) -> decode_array(N, R, []);
decode_term(<<2#101:3, L:5, S:L/binary, R/binary>>) -> {S, R};
decode_term(<<16#c0, R/binary>>) -> {nil, R};
decode_term(<<16#c2, R/binary>>) -> {false, R};
decode_term(<<16#c3, R/binary>>) -> {true, R};
decode_term(<<16#c4, L:8, B:L/binary, R/binary>>) -> {{bin, B}, R};
decode_term(<<16#c5, L:16, B:L/binary, R/binary>>) -> {{bin, B}, R};
decode_term(<<16#c6, L:32, B:L/binary, R/binary>>) -> {{bin, B}, R};
decode_term(<<16#c7, L:8, T:8/signed, D:L/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#c8, L:16, T:8/signed, D:L/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#c9, L:32, T:8/signed, D:L/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#ca, F:32/float, R/binary>>) -> {F, R};
decode_term(<<16#ca, Bits:32, R/binary>>) -> {non_finite(Bits bsr 31, Bits band 16#7fffff), R};
decode_term(<<16#cb, F:64/float, R/binary>>) -> {F, R};
decode_term(<<16#cb, Bits:64, R/binary>>) ->
    {non_finite(Bits bsr 63, Bits band 16#fffffffffffff), R};
decode_term(<<16#cc, V:8, R/binary>>) -> {V, R};
decode_term(<<16#cd, V:16, R/binary>>) -> {V, R};
decode_term(<<16#ce, V:32, R/binary>>) -> {V, R};
decode_term(<<16#cf, V:64, R/binary>>) -> {V, R};
decode_term(<<16#d0, V:8/signed, R/binary>>) -> {V, R};
decode_term(<<16#d1, V:16/signed, R/binary>>) -> {V, R};
decode_term(<<16#d2, V:32/signed, R/binary>>) -> {V, R};
decode_term(<<16#d3, V:64/signed, R/binary>>) -> {V, R};
decode_term(<<16#d4, T:8/signed, D:1/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#d5, T:8/signed, D:2/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#d6, T:8/signed, D:4/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#d7, T:8/signed, D:8/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#d8, T:8/signed, D:16/binary, R/binary>>) -> {{ext, T, D}, R};
decode_term(<<16#d9, L:8, S:L/binary, R/binary>>) -> {S, R};
decode_term(<<16#da, L:16, S:L/binary, R/binary>>) -> {S, R};
decode_term(<<16#db, L:32, S:L/binary, R/binary>>) -> {S, R};
decode_term(<<16#dc, N:16, R/binary>>) -> decode_array(N, R, []);
decode_term(<<16#dd, N:32, R/binary>>) -> decode_array(N, R, []);
decode_term(<<16#de, N:16, R/binary>>) -> decode_map(N, R, []);
decode_term(<<16#df, N:32, R/binary>>) -> decode_map(N, R, []);
decode_term(<<16#c1, _/binary>>) -> throw({tpir_msgpack, {invalid_byte, 16#c1}});
decode_term(_) -> throw({tpir_msgpack, truncated}).

decode_array(0, R, Acc) ->
    {lists:reverse(Acc), R};
decode_array(N, R, Acc) ->
    {Item, R1} = decode_term(R),
    decode_array(N - 1, R1, [Item | Acc]).

decode_map(0, R, Acc) ->
    %% In frame order, so that a repeated key keeps its last value, as in Python's msgpack.
    {maps:from_list(lists:reverse(Acc)), R};
decode_map(N, R, Acc) ->
    {Key, R1} = decode_term(R),
    {Value, R2} = decode_term(R1),
    decode_map(N - 1, R2, [{Key, Value} | Acc]).

%% Called only for bit patterns that Erlang floats cannot hold: an all-ones exponent.
non_finite(_Sign, Mantissa) when Mantissa =/= 0 -> nan;
non_finite(0, 0) -> infinity;
non_finite(1, 0) -> neg_infinity.
