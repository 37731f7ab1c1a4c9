#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% Run one supervision scenario on OTP's own supervisor module and print raw
%% events for supervisors/scenario/otp.py, which writes the input file and
%% parses the output.
%%
%% Usage: escript otp_scenario.escript TERMS_FILE
%%
%% TERMS_FILE is read with file:consult/1 and holds three terms:
%%   {nodes, [Node]}.  every supervisor and worker of the tree, where Node is
%%       #{index := integer(), id := binary(), kind := worker | supervisor,
%%         restart := permanent | transient | temporary,
%%         shutdown := non_neg_integer() | brutal_kill | infinity,
%%         stop_ms := non_neg_integer()}                        (worker) or
%%       #{..., strategy := atom(), intensity := non_neg_integer(),
%%         period := pos_integer(), children := [integer()]}    (supervisor)
%%   {root, Index}.
%%   {steps, [{crash, Index} | {exit, Index, normal | shutdown} | {kill, Index}
%%            | {wait_ms, Milliseconds} | {stop, Index}]}.
%%
%% Standard output carries only these lines, fields separated by one space:
%%   started MICROSECONDS INDEX PID
%%   terminated MICROSECONDS INDEX PID REASON   (normal | shutdown | killed | crash)
%%   ready          the tree has started and the quiet period has ended
%%   quiet STEP     step STEP (from 0) has run and the quiet period has ended
%%   done           every step has run; the script halts with status 0
%% MICROSECONDS is Erlang monotonic time, taken in the process the event
%% happened in, so the reader can sort events that arrive out of order.
%% Errors go to standard error and end the script with status 2.
%%
%% One module plays every part: the supervisor callback and the gen_server
%% worker share init/1, which dispatches on {supervisor, Index} or
%% {worker, Index}; an observer process prints the events; the main process
%% starts the tree and runs the steps.

-mode(compile).

-export([main/1, start_supervisor/1, start_worker/1,
         init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(OBSERVER, scenario_observer).

%% A step ends once no event has been printed for this long and no worker is
%% inside its stop_ms.
-define(QUIET_MS, 100).

%%% Main process: start the tree, run the steps.

main([File]) ->
    %% Progress and crash reports would otherwise reach standard output,
    %% which must carry event lines only.
    ok = logger:set_primary_config(level, none),
    %% The root supervisor is linked to this process and may die (escalation,
    %% kill step); trapping exits keeps the step executor alive.
    process_flag(trap_exit, true),
    try
        run(File),
        halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "otp_scenario: ~p:~p~n  ~p~n", [Class, Reason, Stack]),
            halt(2)
    end;
main(Args) ->
    io:format(standard_error, "usage: otp_scenario.escript TERMS_FILE (got ~p)~n", [Args]),
    halt(64).

run(File) ->
    Terms = case file:consult(File) of
                {ok, Read} -> Read;
                {error, ReadError} -> error({invalid_terms_file, File, ReadError})
            end,
    {nodes, Nodes} = lists:keyfind(nodes, 1, Terms),
    {root, Root} = lists:keyfind(root, 1, Terms),
    {steps, Steps} = lists:keyfind(steps, 1, Terms),
    lists:foreach(fun(#{index := Index} = Node) ->
                          persistent_term:put({?MODULE, Index}, Node)
                  end, Nodes),
    Observer = spawn_link(fun observer/0),
    true = register(?OBSERVER, Observer),
    case start_supervisor(Root) of
        {ok, _RootPid} -> ok;
        StartError -> error({root_start_failed, StartError})
    end,
    ok = call_observer({await_quiet, "ready"}),
    run_steps(Steps, 0),
    ok = call_observer({print, "done"}).

run_steps([], _Number) ->
    ok;
run_steps([Step | Rest], Number) ->
    run_step(Step),
    ok = call_observer({await_quiet, io_lib:format("quiet ~b", [Number])}),
    run_steps(Rest, Number + 1).

run_step({crash, Index}) ->
    with_pid(Index, fun(Pid) -> gen_server:cast(Pid, crash) end);
run_step({exit, Index, Reason}) ->
    with_pid(Index, fun(Pid) -> gen_server:cast(Pid, {exit, Reason}) end);
run_step({kill, Index}) ->
    with_pid(Index, fun(Pid) -> exit(Pid, kill) end);
run_step({wait_ms, Milliseconds}) ->
    timer:sleep(Milliseconds);
run_step({stop, Index}) ->
    with_pid(Index, fun stop_root/1).

%% A step naming an id that is not running does nothing.
with_pid(Index, Fun) ->
    case call_observer({lookup, Index}) of
        undefined -> ok;
        Pid -> Fun(Pid), ok
    end.

%% This process is the root's parent, so the root treats the shutdown exit
%% signal as an orderly stop request and terminates its children first.
stop_root(Pid) ->
    unlink(Pid),
    Monitor = monitor(process, Pid),
    exit(Pid, shutdown),
    receive
        {'DOWN', Monitor, process, Pid, _Reason} -> ok
    end.

%%% Start functions named in the child specs.

%% A supervisor counts as started once start_link has returned, that is once
%% all its static children have started; its dynamic children start after.
start_supervisor(Index) ->
    case supervisor:start_link(?MODULE, {supervisor, Index}) of
        {ok, Pid} ->
            ?OBSERVER ! {started, Pid, now_us()},
            start_dynamic_children(Pid, node_info(Index)),
            {ok, Pid};
        Error ->
            Error
    end.

start_dynamic_children(Pid, #{strategy := simple_one_for_one, children := Children}) ->
    lists:foreach(fun(Child) -> {ok, _} = supervisor:start_child(Pid, [Child]) end, Children);
start_dynamic_children(_Pid, _Node) ->
    ok.

start_worker(Index) ->
    gen_server:start_link(?MODULE, {worker, Index}, []).

%%% init/1 for both behaviours.

init({supervisor, Index}) ->
    announce(Index),
    #{strategy := Strategy, intensity := Intensity, period := Period,
      children := Children} = node_info(Index),
    Flags = #{strategy => Strategy, intensity => Intensity, period => Period},
    Specs = case Strategy of
                simple_one_for_one ->
                    %% The first child is the template; the start argument
                    %% appended by start_child/2 names the dynamic child.
                    [child_spec(hd(Children), {?MODULE, start_worker, []})];
                _ ->
                    [child_spec(Child, static_start(Child)) || Child <- Children]
            end,
    {ok, {Flags, Specs}};
init({worker, Index}) ->
    %% Trapping exits turns the supervisor's shutdown signal into a call of
    %% terminate/2, where the worker can take its stop_ms.
    process_flag(trap_exit, true),
    announce(Index),
    #{stop_ms := StopMs} = node_info(Index),
    ?OBSERVER ! {started, self(), now_us()},
    {ok, #{stop_ms => StopMs, stopping_itself => false}}.

static_start(Index) ->
    case node_info(Index) of
        #{kind := worker} -> {?MODULE, start_worker, [Index]};
        #{kind := supervisor} -> {?MODULE, start_supervisor, [Index]}
    end.

child_spec(Index, Start) ->
    #{kind := Kind, restart := Restart, shutdown := Shutdown} = node_info(Index),
    #{id => Index, start => Start, restart => Restart, shutdown => Shutdown, type => Kind}.

%% Register with the observer first, so that it knows the pid before any trace
%% message about it, then trace this process's exit. The exit trace carries a
%% timestamp taken when the process exits, before its links and monitors fire,
%% so it orders correctly against everything the exit causes.
announce(Index) ->
    ok = call_observer({register, self(), Index}),
    1 = erlang:trace(self(), true, [procs, monotonic_timestamp, {tracer, whereis(?OBSERVER)}]),
    ok.

%%% gen_server callbacks of the worker.

handle_call(_Request, _From, State) ->
    {reply, ok, State}.

handle_cast(crash, State) ->
    {stop, crash, State};
handle_cast({exit, Reason}, State) ->
    {stop, Reason, State#{stopping_itself := true}}.

handle_info(_Message, State) ->
    {noreply, State}.

%% Only a shutdown request from the supervisor takes stop_ms; any other exit
%% signal from the parent (killed when the supervisor was killed) and a stop
%% the worker chose itself end it at once.
terminate(shutdown, #{stopping_itself := false, stop_ms := StopMs}) when StopMs > 0 ->
    ?OBSERVER ! {stopping, self()},
    timer:sleep(StopMs);
terminate(_Reason, _State) ->
    ok.

%%% Observer: the only process that writes to standard output.
%%
%% State keys: names (pid => index of every registered process not yet
%% exited), current (index => pid of the instance that has started),
%% stopping (pids of workers inside their stop_ms), last_event (ms of the last
%% printed event), waiter (none or the caller waiting for the quiet period).

observer() ->
    observer_loop(#{names => #{}, current => #{}, stopping => #{},
                    last_event => now_ms(), waiter => none}).

observer_loop(State) ->
    receive
        Message -> observer_loop(observe(Message, State))
    after quiet_timeout(State) ->
        {From, Ref, Line, _Since} = maps:get(waiter, State),
        print(Line),
        From ! {Ref, ok},
        observer_loop(State#{waiter := none})
    end.

quiet_timeout(#{waiter := none}) ->
    infinity;
quiet_timeout(#{stopping := Stopping}) when map_size(Stopping) > 0 ->
    infinity;
quiet_timeout(#{waiter := {_From, _Ref, _Line, Since}, last_event := LastEvent}) ->
    max(0, max(Since, LastEvent) + ?QUIET_MS - now_ms()).

observe({call, {register, Pid, Index}, From, Ref}, #{names := Names} = State) ->
    From ! {Ref, ok},
    State#{names := Names#{Pid => Index}};
observe({started, Pid, Micros}, #{names := Names, current := Current} = State) ->
    case Names of
        #{Pid := Index} ->
            print(io_lib:format("started ~b ~b ~s", [Micros, Index, pid_to_list(Pid)])),
            State#{current := Current#{Index => Pid}, last_event := now_ms()};
        _ ->
            State
    end;
observe({trace_ts, Pid, exit, Reason, Timestamp}, State) ->
    #{names := Names, current := Current, stopping := Stopping} = State,
    case maps:take(Pid, Names) of
        {Index, OtherNames} ->
            %% Trace timestamps are erlang:monotonic_time(nanosecond) values.
            Micros = erlang:convert_time_unit(Timestamp, nanosecond, microsecond),
            print(io_lib:format("terminated ~b ~b ~s ~s",
                                [Micros, Index, pid_to_list(Pid), reason_word(Reason)])),
            NewCurrent = case Current of
                             #{Index := Pid} -> maps:remove(Index, Current);
                             _ -> Current
                         end,
            State#{names := OtherNames, current := NewCurrent,
                   stopping := maps:remove(Pid, Stopping), last_event := now_ms()};
        error ->
            State
    end;
observe(Trace, State) when is_tuple(Trace), element(1, Trace) =:= trace_ts ->
    %% spawn, link and other process events of traced processes.
    State;
observe({stopping, Pid}, #{names := Names, stopping := Stopping} = State) ->
    %% A worker that has already exited must not hold the quiet period open.
    case Names of
        #{Pid := _} -> State#{stopping := Stopping#{Pid => true}};
        _ -> State
    end;
observe({call, {lookup, Index}, From, Ref}, #{current := Current} = State) ->
    From ! {Ref, maps:get(Index, Current, undefined)},
    State;
observe({call, {await_quiet, Line}, From, Ref}, State) ->
    State#{waiter := {From, Ref, Line, now_ms()}};
observe({call, {print, Line}, From, Ref}, State) ->
    print(Line),
    From ! {Ref, ok},
    State;
observe(Other, State) ->
    io:format(standard_error, "otp_scenario: observer ignored message ~p~n", [Other]),
    State.

call_observer(Request) ->
    Observer = whereis(?OBSERVER),
    Monitor = monitor(process, Observer),
    Observer ! {call, Request, self(), Monitor},
    receive
        {Monitor, Reply} ->
            demonitor(Monitor, [flush]),
            Reply;
        {'DOWN', Monitor, process, _, Reason} ->
            error({observer_down, Reason})
    end.

reason_word(normal) -> "normal";
reason_word(shutdown) -> "shutdown";
reason_word({shutdown, _}) -> "shutdown";
reason_word(killed) -> "killed";
reason_word(_) -> "crash".

print(Line) ->
    io:put_chars([Line, $\n]).

node_info(Index) ->
    persistent_term:get({?MODULE, Index}).

now_us() ->
    erlang:monotonic_time(microsecond).

now_ms() ->
    erlang:monotonic_time(millisecond).
