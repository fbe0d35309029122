// The portfolio page's entry point: wires the modules, each one concern of the page (tabs.js,
// positions.js with position_detail.js, adjust.js and close_dialog.js, new_trade.js with
// order_entry.js, strategy_builder.js, working_orders.js, history.js, performance_tab.js, refresh.js, keyboard.js).
// Every figure shown comes from the API; the modules only lay it out.

import { busy, idle } from "./forms.js";
import { bindCloseDialog } from "./close_dialog.js";
import { bindHistory } from "./history.js";
import { bindKeyboard } from "./keyboard.js";
import { bindNewTrade } from "./new_trade.js";
import { bindOrderEntry } from "./order_entry.js";
import { setRefresher } from "./portfolio_state.js";
import { bindStrategyBuilder } from "./strategy_builder.js";
import { bindRefresh, refreshAll } from "./refresh.js";
import { bindTabs } from "./tabs.js";
import { startTopbar } from "./topbar.js";
import { bindWorkingOrders } from "./working_orders.js";

setRefresher(refreshAll);
startTopbar();
bindTabs();
bindRefresh();
bindCloseDialog();
bindNewTrade();
bindOrderEntry();
bindStrategyBuilder();
bindKeyboard();
bindWorkingOrders({ refresh: () => refreshAll(), busy, idle });
bindHistory();
refreshAll();
