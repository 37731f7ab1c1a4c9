%% @doc Checks of a real TPIR node driven through tpir_port, run by test_node_port.py.
%%
%% Run as
%%   erl -noshell -pa Dir -run tpir_node_check main Case -extra Executable Arg...
%% where Executable and Arg are the node's command line (`python -m tpir.cli run
%% --config FILE'). They come after -extra because erl would take `-m' as its own flag.
%% Every case runs tpir_port under this module's one_for_one supervisor, as erlmcp does.
%%
%% Lines printed for the Python test:
%%   CHECK Name ok              a check that passed
%%   CHECK Name fail Detail     a check that failed, with the values involved
%%   NODE Tag OsPid Pid...      a node the case started: its main process and the pid of
%%                              every supervisor and child of its `tree' result
%%   WAIT Tag                   the case waits for a line on standard input, so that the
%%                              test can inspect the node's processes at this point
%%   CLOSING                    the case is about to close the port (case close_in_flight)
%%   INFO Text                  a measurement for the test log
%%   DONE                       the case ran to its end
%% The VM always halts at the end, also when a case crashes.
-module(tpir_node_check).
-behaviour(supervisor).

-export([main/1, init/1]).

-define(NAME, tpir_node_check_port).
-define(INTEGRATION, <<"llm_provider">>).
-define(LLM, <<"integrations/llm_provider">>).
-define(ROUTER_PATH, <<"tpir/integrations/llm_provider/router">>).
%% A node starts about 15 actor processes; on a loaded 2-core machine that has taken
%% several seconds, so waits for a node are generous.
-define(START_MS, 60000).
-define(CALL_MS, 60000).

main([Case]) ->
    %% tpir_port logs through logger, whose default handler writes to standard output,
    %% which carries the lines above. Its reports go to standard error instead.
    _ = logger:remove_handler(default),
    _ = logger:add_handler(default, logger_std_h, #{config => #{type => standard_error}}),
    [Executable | Args] = init:get_plain_arguments(),
    Options = #{executable => Executable, args => Args, name => ?NAME},
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

run(operations, Options) ->
    Supervisor = start_supervisor(Options),
    check(ready, wait_ready(?START_MS), ok),
    report_node(first),
    check(ping, tpir_port:call(?NAME, ping), {ok, <<"pong">>}),
    check(subscribe, tpir_port:call(?NAME, subscribe, #{}), {ok, #{<<"events">> => nil}}),
    check(subscribe_events, tpir_port:subscribe(?NAME), ok),
    check(call, provider(chat_call(<<"hello">>)), <<"openai">>),
    check(status, integration_names(tpir_port:call(?NAME, status, #{})), [?INTEGRATION]),
    check(tree, root_id(tpir_port:call(?NAME, tree, #{})), <<"tpir">>),
    check(
        which_children,
        child_ids(tpir_port:call(?NAME, which_children, #{supervisor => ?LLM})),
        [<<"breakers">>, <<"providers">>, <<"health">>, <<"router">>]
    ),
    Router = #{supervisor => ?LLM, child => <<"router">>},
    check(terminate_child, tpir_port:call(?NAME, terminate_child, Router, ?CALL_MS), {ok, true}),
    check(call_while_terminated, error_code(chat_call(<<"nobody">>)), <<"not_running">>),
    check(restart_child, child_id(tpir_port:call(?NAME, restart_child, Router, ?CALL_MS)), <<"router">>),
    check(child_restarted_event, wait_restart_event(?ROUTER_PATH, 10000), true),
    check(call_after_restart, provider(chat_call(<<"again">>)), <<"openai">>),
    Points = tpir_port:call(?NAME, recovery_points, #{integration => ?INTEGRATION, limit => 5}),
    check(recovery_points, point_count(Points), 5),
    Now = os:system_time(millisecond) / 1000,
    Restore = tpir_port:call(?NAME, restore, #{integration => ?INTEGRATION, at => Now}, ?CALL_MS),
    check(restore, restore_errors(Restore), {5, []}),
    Reset = #{integration => ?INTEGRATION, provider => <<"openai">>},
    %% Only a permanently failed provider can be reset, so a healthy one gets the
    %% health checker's own error: proof that the request reached it.
    check(reset_provider, error_code(tpir_port:call(?NAME, reset_provider, Reset)), <<"invalid_state">>),
    check(unknown_op, error_code(tpir_port:call(?NAME, launch, #{})), <<"unknown_op">>),
    check(ping_at_end, tpir_port:call(?NAME, ping), {ok, <<"pong">>}),
    stop_supervisor(Supervisor);
run(pipelined, Options) ->
    Workers = 100,
    CallsPerWorker = 100,
    Supervisor = start_supervisor(Options),
    check(ready, wait_ready(?START_MS), ok),
    report_node(first),
    Parent = self(),
    Started = erlang:monotonic_time(millisecond),
    Pids = [spawn_link(fun() -> pipeline_worker(Parent, Worker, CallsPerWorker) end)
            || Worker <- lists:seq(1, Workers)],
    Results = [receive {pipeline_done, Pid, Counts} -> Counts after 600000 -> {0, 0, [timeout]} end
               || Pid <- Pids],
    Elapsed = erlang:monotonic_time(millisecond) - Started,
    Answered = lists:sum([Ok || {Ok, _, _} <- Results]),
    Wrong = lists:sum([Bad || {_, Bad, _} <- Results]),
    Samples = lists:append([Examples || {_, _, Examples} <- Results]),
    io:format("INFO ~b pipelined calls from ~b processes in ~b ms~n",
              [Workers * CallsPerWorker, Workers, Elapsed]),
    check(all_answered, Answered, Workers * CallsPerWorker),
    check(none_wrong, {Wrong, lists:sublist(Samples, 3)}, {0, []}),
    check(nothing_pending, maps:get(pending_calls, tpir_port:info(?NAME)), 0),
    stop_supervisor(Supervisor);
run(kill_restart, Options) ->
    Callers = 40,
    Supervisor = start_supervisor(Options),
    check(ready, wait_ready(?START_MS), ok),
    FirstServer = whereis(?NAME),
    {ok, FirstOsPid} = tpir_port:os_pid(?NAME),
    report_node(first),
    start_callers(Callers),
    %% Some calls complete first, so that the node dies in the middle of steady traffic.
    timer:sleep(1500),
    check(calls_pending, wait_for_pending(Callers, 20000), Callers),
    os:cmd("kill -KILL " ++ integer_to_list(FirstOsPid)),
    Outcomes = collect_callers(Callers, 30000),
    check(pending_get_port_exited, lists:usort([Last || {_, Last} <- Outcomes]), [{error, port_exited}]),
    AnsweredBefore = lists:sum([Ok || {Ok, _} <- Outcomes]),
    io:format("INFO ~b calls answered before the SIGKILL~n", [AnsweredBefore]),
    check(answered_before_kill, AnsweredBefore > 0, true),
    SecondServer = wait_for_restart(FirstServer, 30000),
    check(restarted, is_pid(SecondServer) andalso SecondServer =/= FirstServer, true),
    check(ready_after_restart, wait_ready(?START_MS), ok),
    check(call_after_restart, provider(chat_call(<<"after the restart">>)), <<"openai">>),
    {ok, SecondOsPid} = tpir_port:os_pid(?NAME),
    check(new_os_process, SecondOsPid =/= FirstOsPid, true),
    report_node(second),
    stop_supervisor(Supervisor);
run(close_in_flight, Options) ->
    Callers = 30,
    Supervisor = start_supervisor(Options),
    check(ready, wait_ready(?START_MS), ok),
    report_node(first),
    start_callers(Callers),
    check(calls_pending, wait_for_pending(Callers, 20000), Callers),
    io:format("CLOSING~n"),
    %% terminate/2 of tpir_port closes the port: the node sees end of input.
    check(port_closed, supervisor:terminate_child(Supervisor, ?NAME), ok),
    Outcomes = collect_callers(Callers, 30000),
    check(pending_get_port_exited, lists:usort([Last || {_, Last} <- Outcomes]), [{error, port_exited}]),
    sync(closed),
    stop_supervisor(Supervisor).

%%--------------------------------------------------------------------
%% Node helpers
%%--------------------------------------------------------------------

start_supervisor(Options) ->
    {ok, Supervisor} = supervisor:start_link(?MODULE, tpir_port:child_spec(Options)),
    Supervisor.

stop_supervisor(Supervisor) ->
    unlink(Supervisor),
    exit(Supervisor, shutdown),
    check(supervisor_stopped, wait_until_dead(Supervisor, 20000), true).

%% Returns ok once the node answers ping. Calls made while the server restarts return
%% not_running, and a node that is still starting leaves the ping in its input pipe.
wait_ready(TimeLeft) ->
    Started = erlang:monotonic_time(millisecond),
    case tpir_port:call(?NAME, ping, #{}, max(TimeLeft, 1)) of
        {ok, <<"pong">>} ->
            ok;
        Other when TimeLeft =< 0 ->
            Other;
        _ ->
            timer:sleep(50),
            wait_ready(TimeLeft - (erlang:monotonic_time(millisecond) - Started) - 50)
    end.

%% Prints the node's main process and every actor process of its tree, then waits for
%% the test to collect the rest of its processes (the actor system's admin and logger).
report_node(Tag) ->
    {ok, OsPid} = tpir_port:os_pid(?NAME),
    {ok, Tree} = tpir_port:call(?NAME, tree, #{}, ?CALL_MS),
    Pids = lists:usort(tree_pids(Tree)),
    io:format("NODE ~s ~b~s~n", [Tag, OsPid, [[" ", integer_to_list(Pid)] || Pid <- Pids]]),
    sync(Tag).

sync(Tag) ->
    io:format("WAIT ~s~n", [Tag]),
    _ = io:get_line(standard_io, ""),
    ok.

tree_pids(#{<<"children">> := Children} = Node) ->
    Own = [Pid || Pid <- [maps:get(<<"pid">>, Node, nil)], is_integer(Pid)],
    Own ++ lists:append([child_pids(Child) || Child <- Children]);
tree_pids(_) ->
    [].

child_pids(Child) ->
    Own = [Pid || Pid <- [maps:get(<<"pid">>, Child, nil)], is_integer(Pid)],
    Own ++ tree_pids(maps:get(<<"supervisor">>, Child, #{})).

chat_call(Text) ->
    Request = #{<<"messages">> => [#{<<"role">> => <<"user">>, <<"content">> => Text}]},
    tpir_port:call(?NAME, call, #{integration => ?INTEGRATION, request => Request}, ?CALL_MS).

wait_restart_event(Path, Timeout) ->
    receive
        {tpir_event, #{<<"event">> := <<"child_restarted">>, <<"path">> := Path}} -> true
    after Timeout -> no_event
    end.

%%--------------------------------------------------------------------
%% Callers
%%--------------------------------------------------------------------

%% Each caller calls again as soon as a call succeeds, so its calls are in flight all
%% the time, and reports the number of successes and the first other result.
start_callers(Count) ->
    Parent = self(),
    [spawn_link(fun() -> caller_loop(Parent, N, 0) end) || N <- lists:seq(1, Count)],
    ok.

caller_loop(Parent, N, Ok) ->
    Text = iolist_to_binary(io_lib:format("caller ~b call ~b", [N, Ok])),
    case chat_call(Text) of
        {ok, #{<<"provider">> := _}} -> caller_loop(Parent, N, Ok + 1);
        Other -> Parent ! {caller_done, Ok, Other}
    end.

collect_callers(Count, Timeout) ->
    [receive {caller_done, Ok, Last} -> {Ok, Last} after Timeout -> {0, no_reply} end
     || _ <- lists:seq(1, Count)].

pipeline_worker(Parent, Worker, Calls) ->
    Counts = lists:foldl(
        fun(N, {Ok, Bad, Examples}) ->
            Text = iolist_to_binary(io_lib:format("worker ~b call ~b", [Worker, N])),
            Expected = <<"Simulated reply to: ", Text/binary>>,
            case chat_call(Text) of
                {ok, #{<<"result">> := #{<<"text">> := Expected}}} -> {Ok + 1, Bad, Examples};
                Other -> {Ok, Bad + 1, [Other | Examples]}
            end
        end,
        {0, 0, []},
        lists:seq(1, Calls)
    ),
    Parent ! {pipeline_done, self(), Counts}.

wait_for_pending(Expected, TimeLeft) ->
    Pending =
        case tpir_port:info(?NAME) of
            #{pending_calls := Count} -> Count;
            _ -> -1
        end,
    if
        Pending >= Expected; TimeLeft =< 0 -> Pending;
        true ->
            timer:sleep(20),
            wait_for_pending(Expected, TimeLeft - 20)
    end.

wait_for_restart(OldPid, TimeLeft) ->
    case whereis(?NAME) of
        Pid when is_pid(Pid), Pid =/= OldPid -> Pid;
        _ when TimeLeft =< 0 -> timeout;
        _ ->
            timer:sleep(20),
            wait_for_restart(OldPid, TimeLeft - 20)
    end.

wait_until_dead(Pid, TimeLeft) ->
    case is_process_alive(Pid) of
        false -> true;
        true when TimeLeft =< 0 -> false;
        true ->
            timer:sleep(20),
            wait_until_dead(Pid, TimeLeft - 20)
    end.

%%--------------------------------------------------------------------
%% Reply readers
%%--------------------------------------------------------------------

check(Name, Actual, Expected) when Actual =:= Expected ->
    io:format("CHECK ~0p ok~n", [Name]);
check(Name, Actual, Expected) ->
    io:format("CHECK ~0p fail ~0P expected ~0P~n", [Name, Actual, 40, Expected, 40]).

provider({ok, #{<<"provider">> := Provider}}) -> Provider;
provider(Other) -> {unexpected, Other}.

error_code({error, #{<<"code">> := Code}}) -> Code;
error_code(Other) -> {unexpected, Other}.

integration_names({ok, #{<<"integrations">> := Integrations}}) ->
    [maps:get(<<"name">>, Integration) || Integration <- Integrations];
integration_names(Other) -> {unexpected, Other}.

root_id({ok, #{<<"id">> := Id, <<"children">> := [_ | _]}}) -> Id;
root_id(Other) -> {unexpected, Other}.

child_ids({ok, Children}) when is_list(Children) -> [maps:get(<<"id">>, Child) || Child <- Children];
child_ids(Other) -> {unexpected, Other}.

child_id({ok, #{<<"id">> := Id, <<"pid">> := Pid}}) when is_integer(Pid) -> Id;
child_id(Other) -> {unexpected, Other}.

point_count({ok, #{<<"points">> := Points}}) when is_list(Points) ->
    length([Point || #{<<"valid">> := true} = Point <- Points]);
point_count(Other) -> {unexpected, Other}.

%% Returns the number of actors in a restore result and those that answered with an error.
restore_errors({ok, #{<<"actors">> := Actors}}) ->
    {map_size(Actors), [{Path, Error} || {Path, #{<<"error">> := Error}} <- maps:to_list(Actors)]};
restore_errors(Other) -> {unexpected, Other}.
