import time
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from conftest import open_page, click, go_to_tab
def test_explore(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    go_to_tab(dash_duo, "Layers")
    time.sleep(1)
    cell = dash_duo.find_element("#layer-table th.dash-filter[data-dash-column='sqnr_db']")
    print(cell.get_attribute("outerHTML")[:500])
    click(dash_duo, cell)
    ActionChains(dash_duo.driver).send_keys("< 40", Keys.ENTER).perform()
    time.sleep(2)
    print(dash_duo.find_element("#table-info-div").text)
    print(dash_duo.driver.execute_script("return document.activeElement.outerHTML.slice(0,300)"))
    dash_duo.driver.save_screenshot("/tmp/shot_filter.png")
